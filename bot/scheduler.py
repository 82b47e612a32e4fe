"""The scheduler inside `partner-kpi serve`: digests and syncs on app.yaml's schedules,
exactly once however many replicas run it.

The send log in the database is the memory, not APScheduler. Each replica builds its own
BackgroundScheduler from app.yaml (APScheduler 3 must never share a job store), whose jobs only
wake `tick`: once per `tick_seconds`, at each digest's cron time, and once at start. A tick looks,
for every digest, at its latest scheduled time up to now:

- within the grace time (default 6 hours) and not posted: the replica that claims the key
  `digest:<name>:<channel>:<period start>..<period end>` in the send log first builds the digest,
  stores the KPI snapshot, posts, and records Slack's `ts` with `mark_sent`;
- a claim that was never posted and is older than `stale_claim_minutes` (its claimer crashed
  between claim and post, or Slack refused the post) is taken over atomically by one replica and
  retried, so a post is never lost and never made twice. Each post carries its key in Slack
  message metadata (event_type `partner_kpi_digest`), and the replica that takes a stale claim
  over first reads the channel's history since the claim (conversations.history with
  include_all_metadata): if the crashed claimer's post is there (it died after chat.postMessage,
  before `mark_sent`), its ts is recorded and nothing is posted;
- older than the grace time and never posted: skipped, with one log line.

APScheduler's own misfire handling is not relied on: jobs run with coalesce and no misfire grace
limit, and a late or missed run is found from the send log by the tick. Every notion of "now"
comes from an injectable clock, so tests move time by hand.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channel_audience import SharedChannelRefused, audience_or_refusal
from bot.digest import (
    ChannelUnavailable,
    DigestData,
    build_digest,
    chart_png,
    digest_period,
    find_posted,
    partner_only,
    post_digest,
    render_chart_fallback,
    render_digest,
)
from bot.keyed_posts import HISTORY_MARGIN, history_unreadable
from bot.schedule import CronSchedule, cron_schedule
from kpi.snapshots import save_snapshot
from kpi.store import Store
from settings.app import LoadedConfig
from settings.slack import DigestConfig

log = logging.getLogger("partner_kpi.scheduler")

Clock = Callable[[], datetime]
SyncRunner = Callable[[], object]
#: How far back a schedule's latest run is looked for, widening until one is found.
LOOKBACK = (timedelta(days=8), timedelta(days=32), timedelta(days=367))


def utc_now() -> datetime:
    return datetime.now(UTC)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def digest_trigger(digest: DigestConfig, default_zone: str) -> CronSchedule:
    return cron_schedule(digest.schedule, digest.timezone or default_zone)


def latest_fire(trigger: CronSchedule, now: datetime, window: timedelta) -> datetime | None:
    """The trigger's latest time in (now - window, now], or None."""
    start = now - window
    fire: datetime | None = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    latest = None
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return latest.astimezone(UTC) if latest is not None else None


def latest_scheduled(trigger: CronSchedule, now: datetime, grace: timedelta) -> datetime | None:
    """The latest scheduled time up to `now`: looked for in the grace window first (cheap for
    frequent schedules), then in ever wider windows."""
    for window in (max(grace, timedelta(minutes=1)), *LOOKBACK):
        found = latest_fire(trigger, now, window)
        if found is not None:
            return found
    return None


def digest_key(digest: DigestConfig, start: str, end: str) -> str:
    return f"digest:{digest.name}:{digest.channel}:{start}..{end}"


@dataclass(frozen=True)
class Outcome:
    """What a tick did about one digest."""

    digest: str
    scheduled: datetime | None
    # sent | found-posted (a stale claim's post found in the channel, recorded, not re-posted)
    # | already-sent | claimed-elsewhere | skipped | failed | not-due
    action: str
    key: str | None = None
    ts: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class JobInfo:
    id: str
    what: str
    schedule: str
    timezone: str
    next_runs: tuple[datetime, ...]  # in the schedule's timezone

    @property
    def next_run(self) -> datetime | None:
        return self.next_runs[0] if self.next_runs else None

    @classmethod
    def of(cls, id: str, what: str, schedule: str, trigger: CronSchedule, now: datetime) -> JobInfo:
        """A job run by a cron schedule, with its next three runs from now."""
        return cls(id, what, schedule, str(trigger.timezone), tuple(trigger.next_runs(now)))


class DigestScheduler:
    """Digests and syncs for one replica. `clock` is "now" (aware); `sync` runs a sync."""

    def __init__(
        self,
        store: Store,
        config: LoadedConfig,
        client: WebClient | None,
        *,
        clock: Clock = utc_now,
        sync: SyncRunner | None = None,
        replica: str | None = None,
        chart: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        self.app = config.app
        self.client = client
        self.clock = clock
        self.sync = sync
        self.replica = replica or replica_id()
        self.chart = chart
        settings = self.app.scheduler
        self.grace = timedelta(hours=settings.grace_hours)
        self.stale = timedelta(minutes=settings.stale_claim_minutes)
        self.triggers = {d.name: digest_trigger(d, self.app.timezone) for d in self.app.digests}
        sync_settings = settings.sync
        self.sync_trigger = (
            cron_schedule(sync_settings.schedule, sync_settings.timezone or self.app.timezone)
            if sync_settings.schedule
            else None
        )
        self._skipped: set[str] = set()
        self._reported = False
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None

    # --- the tick ---------------------------------------------------------------------------

    def tick(self) -> list[Outcome]:
        """Sends every digest that is due and not yet posted; safe to call at any time, from
        any number of replicas."""
        with self._lock:
            now = self.clock()
            return [self._digest_tick(digest, now) for digest in self.app.digests]

    def _digest_tick(self, digest: DigestConfig, now: datetime) -> Outcome:
        scheduled = latest_scheduled(self.triggers[digest.name], now, self.grace)
        if scheduled is None:
            return Outcome(digest.name, None, "not-due")
        period = digest_period(digest, self.app, scheduled)
        key = digest_key(digest, period.start.isoformat(), period.end.isoformat())
        state = self.store.claim_state(key)
        if state is not None and state["posted_at"] is not None:
            return Outcome(digest.name, scheduled, "already-sent", key, state["slack_ts"])
        if now - scheduled > self.grace:
            if key not in self._skipped:
                self._skipped.add(key)
                log.warning(
                    "digest %s: the run of %s was missed by more than the grace time (%s) "
                    "and is skipped; `partner-kpi digest %s --send` posts it now",
                    digest.name,
                    scheduled.isoformat(),
                    self.grace,
                    digest.name,
                )
            return Outcome(digest.name, scheduled, "skipped", key)
        detail = {
            "digest": digest.name,
            "channel": digest.channel,
            "scheduled": scheduled.isoformat(),
        }
        if self.store.claim(key, "digest", self.replica, detail):
            return self._send(digest, scheduled, key, now)
        if state is not None and self.store.reclaim_stale(key, self.replica, self.stale):
            # The claimer may have posted and died before mark_sent: look before posting.
            claimed_at = state["claimed_at"].replace(tzinfo=UTC)
            since = min(claimed_at, scheduled) - HISTORY_MARGIN
            return self._send(digest, scheduled, key, now, posted_since=since)
        return Outcome(digest.name, scheduled, "claimed-elsewhere", key)

    def _send(
        self,
        digest: DigestConfig,
        scheduled: datetime,
        key: str,
        now: datetime,
        posted_since: datetime | None = None,
    ) -> Outcome:
        """Builds, snapshots and posts the run; with `posted_since` (a stale claim taken over)
        first looks in the channel for a post of this key made since then."""
        try:
            if posted_since is not None:
                ts = self._already_posted(digest, key, posted_since)
                if ts is not None:
                    self.store.mark_sent(key, ts)
                    log.warning(
                        "digest %s: the run of %s was already posted (ts %s) by a replica that "
                        "stopped before recording it; recorded it, not posted again",
                        digest.name,
                        scheduled.isoformat(),
                        ts,
                    )
                    return Outcome(digest.name, scheduled, "found-posted", key, ts)
            partner = self._audience(digest)
            self._sync_if_old(now)
            chosen = partner_only(digest, partner) if partner else digest
            data = build_digest(
                self.store, self.app, chosen, scheduled, now=now, partner_view=partner is not None
            )
            save_snapshot(self.store, scheduled, data.period, data.cards, program=data.program_card)
            ts = self.deliver(data, key)
        except ChannelUnavailable as error:
            log.error("%s It is retried in %s.", error, self.stale)
            return Outcome(digest.name, scheduled, "failed", key, detail=str(error))
        except SharedChannelRefused as error:
            return Outcome(digest.name, scheduled, "refused", key, detail=str(error))
        except Exception as error:  # one digest's failure never stops the scheduler
            log.exception("digest %s: sending the run of %s failed", digest.name, scheduled)
            return Outcome(digest.name, scheduled, "failed", key, detail=repr(error))
        self.store.mark_sent(key, ts)
        log.info("digest %s: posted to %s (ts %s)", digest.name, digest.channel, ts)
        return Outcome(digest.name, scheduled, "sent", key, ts)

    def _already_posted(self, digest: DigestConfig, key: str, since: datetime) -> str | None:
        """The ts of this key's post in the channel's history since `since`, if any. Without
        the history scope (an app installed before it was asked for) it cannot tell, says so
        and answers None, so the digest is posted rather than lost."""
        if self.client is None:
            raise RuntimeError("the scheduler has no Slack client")
        if digest.channel.startswith("#"):
            log.warning(
                "digest %s: cannot look for an unrecorded earlier post in %s, since "
                "conversations.history needs the channel's ID; put the ID in app.yaml",
                digest.name,
                digest.channel,
            )
            return None
        try:
            return find_posted(self.client, digest, key, since)
        except SlackApiError as error:
            subject = f"digest {digest.name} in {digest.channel}"
            if history_unreadable(error, log, subject, "channels:history and groups:history"):
                return None
            raise

    def _audience(self, digest: DigestConfig) -> str | None:
        """The partner a shared channel is mapped to (None: an internal channel); raises
        SharedChannelRefused, audited, when the digest may not be posted there."""
        if self.client is None:
            raise RuntimeError("the scheduler has no Slack client")
        return audience_or_refusal(
            self.store, self.client, self.app.access, digest.channel, f"digest {digest.name}"
        )

    def deliver(self, data: DigestData, key: str | None = None) -> str:
        """Posts the digest (and its chart) with `key` in its metadata; returns its ts."""
        if self.client is None:
            raise RuntimeError("the scheduler has no Slack client")
        currency = self.app.currency
        chart = chart_png(data, currency) if self.chart and data.shows("chart") else None
        posted = post_digest(
            self.client,
            data.digest,
            render_digest(data, currency),
            chart,
            render_chart_fallback(data, currency) if chart is not None else None,
            key=key,
        )
        return posted.ts

    def _sync_if_old(self, now: datetime) -> None:
        """Syncs first when the data is older than `before_digest_minutes` (never fatal)."""
        minutes = self.app.scheduler.sync.before_digest_minutes
        if self.sync is None or minutes <= 0:
            return
        good = self.store.data_as_of()
        if good is not None and now - good < timedelta(minutes=minutes):
            return
        self._run_sync("before a digest")

    def _run_sync(self, why: str) -> None:
        if self.sync is None:
            return
        try:
            self.sync()
        except Exception as error:  # the digest then warns that the last sync failed
            log.error("sync %s failed: %s", why, error)

    def sync_tick(self) -> bool:
        """The scheduled sync: run by the one replica that claims this run. True if it ran."""
        if self.sync_trigger is None or self.sync is None:
            return False
        now = self.clock()
        scheduled = latest_fire(self.sync_trigger, now, max(self.grace, timedelta(minutes=1)))
        if scheduled is None or now - scheduled > timedelta(minutes=30):
            return False
        if not self.store.claim(f"sync:{scheduled.isoformat()}", "sync", self.replica):
            return False
        self._run_sync("on schedule")
        self.store.mark_sent(f"sync:{scheduled.isoformat()}", None)
        return True

    # --- APScheduler ------------------------------------------------------------------------

    def jobs(self) -> list[JobInfo]:
        """The jobs this replica runs, with their next run times."""
        now = self.clock()
        found = []
        for digest in self.app.digests:
            found.append(
                JobInfo.of(
                    f"digest:{digest.name}",
                    f"digest {digest.name} to {digest.channel} ({digest.period})",
                    digest.schedule,
                    self.triggers[digest.name],
                    now,
                )
            )
        if self.sync_trigger is not None:
            schedule = self.app.scheduler.sync.schedule or ""
            found.append(
                JobInfo.of("sync", f"sync {self.app.source}", schedule, self.sync_trigger, now)
            )
        return found

    def start(self) -> BackgroundScheduler:
        """Starts this replica's own BackgroundScheduler and catches up at once."""
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        settings = self.app.scheduler
        scheduler.add_job(
            self._safe_tick,
            IntervalTrigger(seconds=settings.tick_seconds, timezone=UTC),
            id="tick",
            name="digest catch-up",
            next_run_time=datetime.now(UTC),  # at start: find missed runs in the send log
        )
        for digest in self.app.digests:
            scheduler.add_job(
                self._safe_tick,
                self.triggers[digest.name],
                id=f"digest:{digest.name}",
                name=f"digest {digest.name}",
            )
        if self.sync_trigger is not None and self.sync is not None:
            scheduler.add_job(self.sync_tick, self.sync_trigger, id="sync", name="sync")
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "scheduler started (%s): %d digest(s), grace %s",
            self.replica,
            len(self.app.digests),
            self.grace,
        )
        return scheduler

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            log.info("scheduler stopped (%s)", self.replica)

    def _safe_tick(self) -> None:
        try:
            outcomes = self.tick()
        except Exception:  # the database may be away for a while; the next tick tries again
            log.exception("scheduler tick failed")
            return
        if not self._reported:  # the catch-up at start: say what it found, once
            self._reported = True
            for outcome in outcomes:
                log.info(
                    "digest %s at start: %s%s",
                    outcome.digest,
                    outcome.action,
                    f" (run of {outcome.scheduled.isoformat()})" if outcome.scheduled else "",
                )


def start_scheduler(
    store: Store, config: LoadedConfig, client: WebClient, **options: Any
) -> DigestScheduler:
    """The scheduler of `partner-kpi serve`, started, with the configured source's sync."""
    from connectors.sync import run_sync, source_for

    def sync() -> object:
        return run_sync(store, source_for(config))

    scheduler = DigestScheduler(store, config, client, sync=sync, **options)
    scheduler.start()
    return scheduler
