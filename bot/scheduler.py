"""Digests as a kind of job on the one scheduler (bot/jobs.py): each digest on app.yaml's
schedule, exactly once however many replicas run it.

A tick looks, for every digest, at its latest scheduled time up to now:

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
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channel_audience import SharedChannelRefused
from bot.digest_post import ChannelUnavailable, DigestDelivery, find_posted
from bot.jobs import Clock, JobInfo, Schedule, cron_trigger, latest_scheduled, replica_id, utc_now
from bot.keyed_posts import HISTORY_MARGIN, history_unreadable
from bot.sync_job import SyncJob
from kpi.digest_data import digest_period
from kpi.store import Store
from settings.app import LoadedConfig
from settings.digests import DigestConfig

log = logging.getLogger("partner_kpi.scheduler")


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


class DigestScheduler:
    """The digests of one replica, a kind of job (bot/jobs.py). `clock` is "now" (aware);
    `sync` (the replica's sync job) runs first when the data is too old."""

    name = "digest"
    catch_up = True

    def __init__(
        self,
        store: Store,
        config: LoadedConfig,
        client: WebClient | None,
        *,
        clock: Clock = utc_now,
        sync: SyncJob | None = None,
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
        self.triggers = {d.name: cron_trigger(d, self.app.timezone) for d in self.app.digests}
        self._skipped: set[str] = set()
        self._reported = False
        self._lock = threading.Lock()

    def schedules(self) -> list[Schedule]:
        return [
            Schedule.of(f"digest:{d.name}", f"digest {d.name} to {d.channel} ({d.period})", d, t)
            for d, t in zip(self.app.digests, self.triggers.values(), strict=True)
        ]

    def jobs(self) -> list[JobInfo]:
        """The digests' jobs, with their next run times."""
        now = self.clock()
        return [JobInfo.of(schedule, now) for schedule in self.schedules()]

    # --- the tick ---------------------------------------------------------------------------

    def tick(self) -> list[Outcome]:
        """Sends every digest that is due and not yet posted; safe to call at any time, from
        any number of replicas."""
        with self._lock:
            now = self.clock()
            outcomes = [self._digest_tick(digest, now) for digest in self.app.digests]
        if not self._reported:  # the catch-up at start: say what it found, once
            self._reported = True
            for outcome in outcomes:
                log.info(
                    "digest %s at start: %s%s",
                    outcome.digest,
                    outcome.action,
                    f" (run of {outcome.scheduled.isoformat()})" if outcome.scheduled else "",
                )
        return outcomes

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
            if self.client is None:
                raise RuntimeError("the scheduler has no Slack client")
            delivery = DigestDelivery(self.store, self.app, self.client, self.chart)
            delivered = delivery.deliver(
                digest, scheduled, key, now, prepare=lambda: self._sync_if_old(now)
            )
        except ChannelUnavailable as error:
            log.error("%s It is retried in %s.", error, self.stale)
            return Outcome(digest.name, scheduled, "failed", key, detail=str(error))
        except SharedChannelRefused as error:
            return Outcome(digest.name, scheduled, "refused", key, detail=str(error))
        except Exception as error:  # one digest's failure never stops the scheduler
            log.exception("digest %s: sending the run of %s failed", digest.name, scheduled)
            return Outcome(digest.name, scheduled, "failed", key, detail=repr(error))
        ts = delivered.posted.ts
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

    def _sync_if_old(self, now: datetime) -> None:
        """Syncs first when the data is older than `before_digest_minutes` (never fatal)."""
        if self.sync is not None:
            self.sync.run_if_older(self.app.scheduler.sync.before_digest_minutes, now)
