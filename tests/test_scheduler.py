"""The scheduler with a hand-moved clock: local times across daylight saving, catch-up within
the grace time, skips outside it, restarts, stale claims, a channel the bot is not in, and two
schedulers (separate engines) on one database posting exactly once to a loopback Slack."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from sqlalchemy import update

from bot.jobs import Jobs, latest_scheduled
from bot.scheduler import DigestScheduler, Outcome
from bot.slack_app import web_client
from kpi import schema
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store, open_store
from settings.app import AppConfig, LoadedConfig
from tests.databases import schema_url
from tests.fake_slack import FakeSlack

CHANNEL = "C0DIGEST"
# Mondays 09:00 in Berlin: 07:00 UTC in summer time (CEST), 08:00 UTC after 2026-10-25 (CET).
MONDAY_CEST = datetime(2026, 10, 19, 7, 0, tzinfo=UTC)
MONDAY_CET = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def seed(store: Store) -> None:
    partners = [
        Partner(
            id=f"P{i}",
            name=f"Partner {i}",
            tier="Gold" if i % 2 else "Silver",
            joined_on=date(2025, 1, 1),
        )
        for i in range(6)
    ]
    deals = [
        Deal(
            id=f"D{i}-{j}",
            partner_id=f"P{i}" if j % 3 else None,
            name=f"Deal {i}-{j}",
            amount=Decimal(1000 * (i + 1) + 100 * j),
            status=DealStatus.WON if (i + j) % 3 else DealStatus.LOST,
            created_on=date(2026, 8, 1),
            closed_on=date(2026, 8, 3) + timedelta(days=7 * j + i),
        )
        for i in range(6)
        for j in range(12)
    ]
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})


def loaded(url: str, **scheduler: Any) -> LoadedConfig:
    app = AppConfig.model_validate(
        {
            "digests": [
                {
                    "name": "weekly",
                    "channel": CHANNEL,
                    "schedule": "0 9 * * mon",
                    "timezone": "Europe/Berlin",
                    "period": "last-7d",
                }
            ],
            "scheduler": {"sync": {"schedule": None}, **scheduler},
        }
    )
    return LoadedConfig(app, None, Path("."), url)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(wall_clock_ts=True) as server:  # ts from the clock, as Slack's are
        yield server


def scheduler_for(
    store: Store, fake: FakeSlack, clock: Clock, replica: str = "r1", **settings: Any
) -> DigestScheduler:
    client = web_client("xoxb-test", fake.api_url)
    config = loaded(str(store.engine.url), **settings)
    return DigestScheduler(store, config, client, clock=clock, replica=replica, chart=False)


def actions(outcomes: list[Outcome]) -> list[str]:
    return [outcome.action for outcome in outcomes]


def test_fires_at_nine_local_time_across_the_daylight_saving_change(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST - timedelta(minutes=1))
    scheduler = scheduler_for(store, fake, clock)
    assert actions(scheduler.tick()) == ["skipped"]  # the Monday before, long past the grace
    assert fake.messages_in(CHANNEL) == []

    clock.now = MONDAY_CEST  # 09:00 CEST
    (sent,) = scheduler.tick()
    assert (sent.action, sent.scheduled) == ("sent", MONDAY_CEST)
    assert sent.key == f"digest:weekly:{CHANNEL}:2026-10-12..2026-10-19"

    clock.now = MONDAY_CEST + timedelta(days=7)  # 07:00 UTC is 08:00 CET: not yet
    assert actions(scheduler.tick()) == ["already-sent"]
    (job,) = scheduler.jobs()
    assert job.next_run is not None
    assert job.next_run.astimezone(UTC) == MONDAY_CET
    assert (job.next_run.hour, job.next_run.tzname()) == (9, "CET")

    clock.now = MONDAY_CET  # 09:00 CET
    (sent,) = scheduler.tick()
    assert (sent.action, sent.scheduled) == ("sent", MONDAY_CET)
    assert len(fake.messages_in(CHANNEL)) == 2
    assert latest_scheduled(scheduler.triggers["weekly"], MONDAY_CET, timedelta(hours=6)) == (
        MONDAY_CET
    )


def test_a_run_missed_within_the_grace_time_is_sent_once(store: Store, fake: FakeSlack) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(hours=5, minutes=59))
    scheduler = scheduler_for(store, fake, clock)
    assert actions(scheduler.tick()) == ["sent"]
    clock.now += timedelta(minutes=1)
    assert actions(scheduler.tick()) == ["already-sent"]
    assert len(fake.calls_to("chat.postMessage")) == 1
    state = store.claim_state(f"digest:weekly:{CHANNEL}:2026-10-12..2026-10-19")
    assert state is not None and state["posted_at"] is not None
    assert state["slack_ts"] == fake.messages_in(CHANNEL)[0]["ts"]


def test_a_run_missed_by_more_than_the_grace_time_is_skipped_and_logged(
    store: Store, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(hours=6, minutes=1))
    scheduler = scheduler_for(store, fake, clock)
    with caplog.at_level(logging.WARNING, logger="partner_kpi.scheduler"):
        assert actions(scheduler.tick()) == ["skipped"]
        assert actions(scheduler.tick()) == ["skipped"]
    skips = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) == 1  # logged once, not at every tick
    assert "2026-10-19T07:00:00+00:00" in skips[0].getMessage()
    assert fake.calls_to("chat.postMessage") == []

    wider = scheduler_for(store, fake, clock, grace_hours=12)
    assert actions(wider.tick()) == ["sent"]


def test_after_a_restart_nothing_is_sent_again(store: Store, fake: FakeSlack) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(minutes=3))
    assert actions(scheduler_for(store, fake, clock).tick()) == ["sent"]
    again = open_store(str(store.engine.url.render_as_string(hide_password=False)))
    try:
        restarted = scheduler_for(again, fake, clock, replica="r1-restarted")
        assert actions(restarted.tick()) == ["already-sent"]
        clock.now += timedelta(hours=2)
        assert actions(restarted.tick()) == ["already-sent"]
    finally:
        again.engine.dispose()
    assert len(fake.calls_to("chat.postMessage")) == 1


def test_a_stale_claim_is_retried_once_and_a_fresh_one_is_left_alone(
    store: Store, fake: FakeSlack
) -> None:
    seed(store)
    key = f"digest:weekly:{CHANNEL}:2026-10-12..2026-10-19"
    assert store.claim(key, "digest", "crashed-replica")  # claimed, then the replica died
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    scheduler = scheduler_for(store, fake, clock)
    assert actions(scheduler.tick()) == ["claimed-elsewhere"]  # not stale yet
    assert fake.calls_to("chat.postMessage") == []

    with store.transaction() as connection:
        connection.execute(
            update(schema.send_log)
            .where(schema.send_log.c.key == key)
            .values(claimed_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=16))
        )
    other = scheduler_for(store, fake, clock, replica="r2")
    assert store.reclaim_stale(key, "r3", timedelta(minutes=15))  # one taker wins...
    assert not store.reclaim_stale(key, "r4", timedelta(minutes=15))  # ...and only one
    assert actions(other.tick()) == ["claimed-elsewhere"]  # r3 holds a fresh claim now
    with store.transaction() as connection:
        connection.execute(
            update(schema.send_log)
            .where(schema.send_log.c.key == key)
            .values(claimed_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=16))
        )
    assert actions(other.tick()) == ["sent"]
    assert actions(scheduler.tick()) == ["already-sent"]
    assert len(fake.calls_to("chat.postMessage")) == 1
    state = store.claim_state(key)
    assert state is not None and state["claimed_by"] == "r2"


def test_a_channel_the_bot_is_not_in_gets_a_hint_not_a_crash_loop(
    store: Store, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    fake.add_channel(CHANNEL, "partners", is_member=False)
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    scheduler = scheduler_for(store, fake, clock)
    with caplog.at_level(logging.ERROR, logger="partner_kpi.scheduler"):
        (failed,) = scheduler.tick()
        for _ in range(3):
            assert actions(scheduler.tick()) == ["claimed-elsewhere"]  # waits for staleness
    assert failed.action == "failed"
    assert "not_in_channel" in failed.detail and "/invite @partner-kpi" in failed.detail
    assert len(fake.calls_to("chat.postMessage")) == 1
    (line,) = [r.getMessage() for r in caplog.records if "/invite @partner-kpi" in r.getMessage()]
    assert "retried in" in line


def test_two_schedulers_on_one_database_post_exactly_once(
    database_url: str, fake: FakeSlack
) -> None:
    """Two replicas, each with its own engine and its own APScheduler, started together at a
    time the digest is due: the catch-up tick of both fires, one post reaches Slack."""
    first, second = open_store(database_url), open_store(database_url, migrate=False)
    try:
        seed(first)
        clock = Clock(MONDAY_CEST + timedelta(minutes=2))
        replicas = [
            scheduler_for(first, fake, clock, replica="a"),
            scheduler_for(second, fake, clock, replica="b"),
        ]
        outcomes: list[Outcome] = []
        barrier = threading.Barrier(len(replicas))

        def race(replica: DigestScheduler) -> None:
            barrier.wait()
            outcomes.extend(replica.tick())

        threads = [threading.Thread(target=race, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(actions(outcomes)) in (
            ["claimed-elsewhere", "sent"],
            ["already-sent", "sent"],
        )

        # The real thing: each replica's own BackgroundScheduler, catching up at start.
        clock.now = MONDAY_CET + timedelta(minutes=5)
        caught_up = [after_tick(r) for r in replicas]
        schedulers = [Jobs(60, [r], clock=r.clock, replica=r.replica) for r in replicas]
        for scheduler in schedulers:
            scheduler.start()
        try:
            fake.wait_for(lambda: len(fake.messages_in(CHANNEL)) >= 2, timeout=15)
            # every replica's catch-up tick has ended (the next is a minute away): a duplicate,
            # were there one, has been posted by now
            assert all(done.wait(15) for done in caught_up)
        finally:
            for scheduler in schedulers:
                scheduler.shutdown()
        posts = fake.calls_to("chat.postMessage")
        assert len(posts) == 2 and len(fake.messages_in(CHANNEL)) == 2
        assert all(post.body["channel"] == CHANNEL for post in posts)
    finally:
        first.engine.dispose()
        second.engine.dispose()


def after_tick(replica: DigestScheduler) -> threading.Event:
    """An event set once `replica` has finished a tick run by its scheduler."""
    done = threading.Event()
    tick = replica.tick

    def tick_then_tell() -> list[Outcome]:
        try:
            return tick()
        finally:
            done.set()

    replica.tick = tick_then_tell  # type: ignore[method-assign]
    return done


@pytest.mark.skipif(
    not __import__("os").environ.get("PARTNER_KPI_TEST_DATABASE_URL"),
    reason="PARTNER_KPI_TEST_DATABASE_URL names no PostgreSQL",
)
def test_two_schedulers_on_postgresql_race_many_times(fake: FakeSlack) -> None:
    """Many rounds of two replicas racing for the same run on PostgreSQL."""
    import os
    import uuid

    from sqlalchemy import create_engine, text

    base = os.environ["PARTNER_KPI_TEST_DATABASE_URL"]
    name = f"pk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = schema_url(base, name)
    first, second = open_store(url), open_store(url, migrate=False)
    try:
        seed(first)
        rounds = 8
        for week in range(rounds):
            clock = Clock(MONDAY_CET + timedelta(days=7 * week, minutes=1))
            replicas = [
                scheduler_for(first, fake, clock, replica="a"),
                scheduler_for(second, fake, clock, replica="b"),
            ]
            barrier = threading.Barrier(2)
            results: list[Outcome] = []

            def race(
                replica: DigestScheduler,
                barrier: threading.Barrier = barrier,
                results: list[Outcome] = results,
            ) -> None:
                barrier.wait()
                results.extend(replica.tick())

            threads = [threading.Thread(target=race, args=(r,)) for r in replicas]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert actions(results).count("sent") == 1
        assert len(fake.calls_to("chat.postMessage")) == rounds
    finally:
        first.engine.dispose()
        second.engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


# --- a crash between the post and mark_sent ----------------------------------------------------

KEY = f"digest:weekly:{CHANNEL}:2026-10-12..2026-10-19"


def age_claim(store: Store, key: str, minutes: float = 16) -> None:
    with store.transaction() as connection:
        connection.execute(
            update(schema.send_log)
            .where(schema.send_log.c.key == key)
            .values(claimed_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes))
        )


class KilledBeforeMarkSent(Store):
    """A store whose process dies the moment it would record the post."""

    def mark_sent(self, key: str, slack_ts: str | None) -> None:
        raise KeyboardInterrupt("the process was killed before mark_sent")


def crash_after_posting(store: Store, fake: FakeSlack, clock: Clock) -> str:
    """A replica claims and posts the digest, then dies before mark_sent; returns the ts."""
    doomed = scheduler_for(KilledBeforeMarkSent(store.engine), fake, clock, replica="doomed")
    with pytest.raises(KeyboardInterrupt):
        doomed.tick()
    (posted,) = fake.messages_in(CHANNEL)
    state = store.claim_state(KEY)
    assert state is not None and state["posted_at"] is None and state["claimed_by"] == "doomed"
    return str(posted["ts"])


def test_a_post_made_before_a_crash_is_found_and_recorded_not_repeated(
    store: Store, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    ts = crash_after_posting(store, fake, clock)
    (posted,) = fake.messages_in(CHANNEL)
    assert posted["metadata"] == {"event_type": "partner_kpi_digest", "event_payload": {"key": KEY}}
    # Others talk in the channel meanwhile; the digest is no longer the newest message.
    client = web_client("xoxb-test", fake.api_url)
    for i in range(3):
        client.chat_postMessage(channel=CHANNEL, text=f"chatter {i}")
    claimed_at = store.claim_state(KEY)["claimed_at"]  # type: ignore[index]

    survivor = scheduler_for(store, fake, clock, replica="survivor")
    assert actions(survivor.tick()) == ["claimed-elsewhere"]  # the claim is not stale yet
    age_claim(store, KEY)
    with caplog.at_level(logging.WARNING, logger="partner_kpi.scheduler"):
        (outcome,) = survivor.tick()
    assert (outcome.action, outcome.ts) == ("found-posted", ts)
    assert len(fake.calls_to("chat.postMessage")) == 4  # the digest once, and the chatter
    (history,) = fake.calls_to("conversations.history")
    assert history.body["channel"] == CHANNEL and history.body["include_all_metadata"] in (
        True,
        "1",
        "true",
    )
    oldest = float(history.body["oldest"])
    aged = claimed_at.replace(tzinfo=UTC) - timedelta(minutes=16)
    assert oldest <= aged.timestamp() and oldest <= float(ts)
    state = store.claim_state(KEY)
    assert state is not None and state["slack_ts"] == ts and state["posted_at"] is not None
    assert any("already posted" in r.getMessage() for r in caplog.records)
    assert actions(survivor.tick()) == ["already-sent"]
    assert len(fake.messages_in(CHANNEL)) == 4


def test_a_crash_before_the_post_is_still_retried_once(store: Store, fake: FakeSlack) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    fake.fail_next("chat.postMessage", error="internal_error", status=500, times=1)
    first = scheduler_for(store, fake, clock, replica="first")
    assert actions(first.tick()) == ["failed"]
    assert fake.messages_in(CHANNEL) == []
    # Someone else's message carrying another week's key is not taken for this one.
    client = web_client("xoxb-test", fake.api_url)
    other_week = KEY.replace("2026-10-12..2026-10-19", "2026-10-05..2026-10-12")
    client.chat_postMessage(
        channel=CHANNEL,
        text="last week's digest",
        metadata={"event_type": "partner_kpi_digest", "event_payload": {"key": other_week}},
    )
    age_claim(store, KEY)
    second = scheduler_for(store, fake, clock, replica="second")
    (outcome,) = second.tick()
    assert outcome.action == "sent"
    assert len(fake.calls_to("conversations.history")) == 1
    newest = fake.messages_in(CHANNEL)[-1]
    assert newest["ts"] == outcome.ts and newest["metadata"]["event_payload"]["key"] == KEY


def test_without_the_history_scope_a_stale_claim_is_posted_with_a_warning(
    store: Store, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    assert store.claim(KEY, "digest", "crashed-replica")
    age_claim(store, KEY)
    fake.fail_next(
        "conversations.history",
        error="missing_scope",
        extra={"needed": "channels:history", "provided": "chat:write,files:write"},
    )
    with caplog.at_level(logging.WARNING, logger="partner_kpi.scheduler"):
        assert actions(scheduler_for(store, fake, clock).tick()) == ["sent"]
    (line,) = [r.getMessage() for r in caplog.records if "missing_scope" in r.getMessage()]
    assert "channels:history" in line and "reinstall" in line


def test_a_history_the_bot_cannot_read_gets_the_invite_hint(store: Store, fake: FakeSlack) -> None:
    seed(store)
    clock = Clock(MONDAY_CEST + timedelta(minutes=1))
    assert store.claim(KEY, "digest", "crashed-replica")
    age_claim(store, KEY)
    fake.add_channel(CHANNEL, "partners", is_member=False)
    (outcome,) = scheduler_for(store, fake, clock).tick()
    assert outcome.action == "failed" and "not_in_channel" in outcome.detail
    assert "/invite @partner-kpi" in outcome.detail
    assert fake.calls_to("chat.postMessage") == []


def test_the_fake_pages_history_newest_first_with_metadata_as_slack_does(
    fake: FakeSlack,
) -> None:
    client = web_client("xoxb-test", fake.api_url)
    tagged = {"event_type": "partner_kpi_digest", "event_payload": {"key": "k"}}
    posted = [
        client.chat_postMessage(channel=CHANNEL, text=f"m{i}", metadata=tagged if i == 2 else None)[
            "ts"
        ]
        for i in range(7)
    ]
    client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=posted[0])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = client.conversations_history(
            channel=CHANNEL, oldest=posted[0], limit=2, cursor=cursor, include_all_metadata=True
        )
        pages += 1
        seen.extend(m["ts"] for m in page["messages"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert seen == posted[:0:-1] and pages == 3  # newest first, oldest excluded, no reply
    full = client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert [m.get("metadata") for m in full["messages"] if m["ts"] == posted[2]] == [tagged]
    bare = client.conversations_history(channel=CHANNEL)
    assert [m.get("metadata") for m in bare["messages"] if m["ts"] == posted[2]] == [
        {"event_type": "partner_kpi_digest"}
    ]
    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel="#partners")
    assert raised.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel=CHANNEL, cursor="not-a-cursor")
    assert raised.value.response["error"] == "invalid_cursor"
    fake.add_channel("C0OTHER", is_member=False)
    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel="C0OTHER")
    assert raised.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel=CHANNEL, text="x", metadata={"event_type": "only"})
    assert raised.value.response["error"] == "invalid_metadata_schema"
    assert float(posted[-1]) == pytest.approx(time.time(), abs=60)  # wall-clock ts
