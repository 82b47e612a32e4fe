"""The one scheduler of a process (bot/jobs.py): every kind of job on one BackgroundScheduler,
catch-up ticks at start, a failing kind that stops nothing, the look-back that finds a
schedule's latest runs, and the kinds `partner-kpi serve` registers (bot/serve_jobs.py)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.jobs import Jobs, Schedule, latest_scheduled, recent_fires
from bot.schedule import cron_schedule
from bot.serve_jobs import process_jobs
from bot.sync_job import SyncJob
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig

EVERY_MINUTE = cron_schedule("* * * * *", "UTC")
MONDAYS = cron_schedule("0 9 * * 1", "Europe/Berlin")


class Kind:
    """A kind of job that counts its ticks; `fail` makes each tick raise."""

    def __init__(self, name: str, catch_up: bool, fail: bool = False) -> None:
        self.name = name
        self.catch_up = catch_up
        self.fail = fail
        self.ticked = threading.Event()
        self.ticks = 0

    def schedules(self) -> list[Schedule]:
        return [Schedule(f"{self.name}:monday", f"{self.name} on Mondays", "0 9 * * 1", MONDAYS)]

    def tick(self) -> object:
        self.ticks += 1
        self.ticked.set()
        if self.fail:
            raise RuntimeError(f"{self.name} is broken")
        return None


def test_every_kind_runs_on_one_scheduler_and_a_failing_kind_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, catching_up, on_schedule = Kind("broken", True, True), Kind("a", True), Kind("b", False)
    jobs = Jobs(3600, [broken, catching_up, on_schedule], replica="test")
    with caplog.at_level(logging.INFO, "partner_kpi.scheduler"):
        scheduler = jobs.start()
        try:
            assert broken.ticked.wait(5) and catching_up.ticked.wait(5)  # the catch-up at start
            ids = [job.id for job in scheduler.get_jobs()]
            assert sorted(ids) == sorted(
                ["broken:catch-up", "broken:monday", "a:catch-up", "a:monday", "b:monday"]
            )
            assert not on_schedule.ticked.is_set()  # no catch-up: it waits for its schedule
            catching_up.ticked.clear()
            scheduler.get_job("a:monday").modify(next_run_time=datetime.now(UTC))
            assert catching_up.ticked.wait(5)  # its schedule wakes the same tick
        finally:
            jobs.shutdown()
    assert "broken tick failed" in caplog.text and "broken is broken" in caplog.text
    assert "scheduler started (test)" in caplog.text and "scheduler stopped (test)" in caplog.text


def test_the_listing_gives_each_schedule_its_next_three_runs() -> None:
    now = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    jobs = Jobs(60, [Kind("a", True)], clock=lambda: now)
    (job,) = jobs.listing()
    assert (job.id, job.schedule, job.timezone) == ("a:monday", "0 9 * * 1", "Europe/Berlin")
    assert [run.strftime("%a %d %H:%M %Z") for run in job.next_runs] == [
        "Mon 26 09:00 CET",
        "Mon 02 09:00 CET",
        "Mon 09 09:00 CET",
    ]


def test_the_look_back_finds_the_latest_runs_however_far_back() -> None:
    now = datetime(2026, 10, 20, 12, 0, 30, tzinfo=UTC)
    assert recent_fires(EVERY_MINUTE, now, 2) == [
        datetime(2026, 10, 20, 12, 0, tzinfo=UTC),
        datetime(2026, 10, 20, 11, 59, tzinfo=UTC),
    ]
    yearly = cron_schedule("0 0 1 1 *", "UTC")
    assert recent_fires(yearly, now, 2) == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    ]
    # The grace window first, then wider: the latest Monday 09:00 Berlin (07:00 UTC in summer).
    assert latest_scheduled(MONDAYS, now, timedelta(hours=6)) == datetime(
        2026, 10, 19, 7, 0, tzinfo=UTC
    )
    never = cron_schedule("0 0 30 2 *", "UTC")  # 30 February
    assert recent_fires(never, now, 1) == [] and latest_scheduled(never, now, timedelta(0)) is None


def test_serve_registers_digests_the_sync_survey_rounds_and_alerts(store: Store) -> None:
    app = AppConfig.model_validate(
        {
            "digests": [{"name": "weekly", "channel": "C0DIGEST", "schedule": "0 9 * * 1"}],
            "scheduler": {"sync": {"schedule": "30 * * * *"}},
            "surveys": [{"name": "nps", "schedule": "0 9 1 * *", "results_channel": "C0RES"}],
        }
    )
    jobs = process_jobs(store, LoadedConfig(app, None, Path("."), "unused"), None)
    assert [kind.name for kind in jobs.kinds] == ["digest", "sync", "survey", "alert"]
    assert [kind.catch_up for kind in jobs.kinds] == [True, False, True, True]
    assert [job.id for job in jobs.listing()] == ["digest:weekly", "sync", "survey:nps"]
    assert jobs.kinds[2].tick() == []  # listing only (no Slack client): a tick sends nothing


def test_the_scheduled_sync_runs_once_per_time_and_before_digests_when_old(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppConfig.model_validate({"scheduler": {"sync": {"schedule": "30 * * * *"}}})
    now = datetime(2026, 10, 20, 12, 40, tzinfo=UTC)
    runs: list[str] = []
    first = SyncJob(store, app, lambda: runs.append("first"), clock=lambda: now, replica="r1")
    second = SyncJob(store, app, lambda: runs.append("second"), clock=lambda: now, replica="r2")
    assert first.tick() and not second.tick() and not first.tick()  # 12:30, claimed once
    assert runs == ["first"]
    state = store.claim_state("sync:2026-10-20T12:30:00+00:00")
    assert state is not None and state["posted_at"] is not None
    now = datetime(2026, 10, 20, 14, 1, tzinfo=UTC)  # 13:30 was 31 minutes ago: left alone
    assert not second.tick() and runs == ["first"]

    def broken() -> None:
        raise RuntimeError("INVALID_LOGIN")

    failing = SyncJob(store, app, broken)
    with caplog.at_level(logging.ERROR, "partner_kpi.scheduler"):
        failing.run_if_older(30, now)  # nothing synced yet: it syncs, and logs the failure
    assert "sync before a digest failed: INVALID_LOGIN" in caplog.text
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})
    failing.run_if_older(30, datetime.now(UTC))  # fresh data: no sync
    assert caplog.text.count("INVALID_LOGIN") == 1
