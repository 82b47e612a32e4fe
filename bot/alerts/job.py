"""Alerts as a kind of job on the one scheduler (bot/jobs.py): after every sync, each rule of
app.yaml's `alerts:` is checked and what changed is posted to its channel, exactly once however
many replicas run.

The data version is the id of the latest finished sync run (whatever its outcome). A tick (every
`scheduler.tick_seconds`, at start, and right after this replica's own sync) that finds a version
it has not checked claims `alert-run:<version>` in the send log, so one replica checks it; a
check whose replica died is taken over once its claim is `stale_claim_minutes` old. Each event is
then claimed under its own key (bot/alerts/events.py) before it is posted, one message per rule
listing that version's events, whose metadata carries `alert:<rule>:<version>`: a claim left
unposted (Slack refused, or the replica died) is retried after the stale time, first looking for
the post in the channel's history so that nothing is posted twice.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.alerts.events import (
    SEND_LOG_KIND,
    AlertEvent,
    due_events,
    last_said,
    rule_prefix,
)
from bot.alerts.watch import Watcher
from bot.channel_audience import SharedChannelRefused, audience_or_refusal
from bot.jobs import Clock, Schedule, replica_id, utc_now
from bot.keyed_posts import HISTORY_MARGIN, find_keyed_post, history_unreadable, keyed_metadata
from bot.messages import render
from kpi.store import Store
from settings.alerts import AlertRule
from settings.app import AppConfig
from settings.periods import today_in
from templates import word

log = logging.getLogger("partner_kpi.alerts")

#: The event_type of the metadata of each alert post, with `alert:<rule>:<version>`.
ALERT_EVENT = "partner_kpi_alert"
RUN_KIND = "alert-run"


def run_key(version: int) -> str:
    return f"{RUN_KIND}:{version}"


def post_key(rule: str, version: int) -> str:
    return f"{rule_prefix(rule)}{version}"


@dataclass
class RuleOutcome:
    """What a check did about one rule: its events, and whether they were posted."""

    rule: str
    events: list[AlertEvent] = field(default_factory=list)
    posted: bool = False
    detail: str = ""


class AlertJob:
    """The alert rules of one replica, a kind of job. Without a Slack client it only previews."""

    name = "alert"
    catch_up = True

    def __init__(
        self,
        store: Store,
        app: AppConfig,
        client: WebClient | None,
        *,
        clock: Clock = utc_now,
        replica: str | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.store, self.app, self.client = store, app, client
        self.clock = clock
        self.replica = replica or replica_id()
        self.today = today or (lambda: today_in(app.tz))
        self.stale = timedelta(minutes=app.scheduler.stale_claim_minutes)
        self._checked: int | None = None
        self._lock = threading.Lock()

    def schedules(self) -> list[Schedule]:
        return []  # no cron of its own: it runs after every sync

    # --- the tick ----------------------------------------------------------------------------

    def tick(self) -> list[RuleOutcome] | None:
        """Checks the latest data version once, and retries stale posts; None when there was
        nothing new to check (or another replica checks it)."""
        if not self.app.alerts:
            return None
        with self._lock:
            self._retry_stale()
            latest = self.store.last_sync(status=None)
            if latest is None or latest.id == self._checked:
                return None
            if self._other_check_running(latest.id):
                return None  # its events would race this one's: the next tick checks
            key = run_key(latest.id)
            state = self.store.claim_state(key)
            if not self.store.claim(key, RUN_KIND, self.replica, {"version": latest.id}):
                if state is None or not self.store.reclaim_stale(key, self.replica, self.stale):
                    if state is not None and state["posted_at"] is not None:
                        self._checked = latest.id
                    return None
                log.warning("alerts: the check of data version %s is taken over", latest.id)
            outcomes = self.check(latest.id)
            self.store.mark_sent(key, None)
            self._checked = latest.id
            return outcomes

    def _other_check_running(self, version: int) -> bool:
        """Whether a replica is checking another data version now (claimed, not done, younger
        than the stale time): two versions checked at once could both say one event."""
        cutoff = (self.clock() - self.stale).astimezone(UTC).replace(tzinfo=None)
        return any(
            row["key"] != run_key(version) and row["claimed_at"] >= cutoff
            for row in self.store.claims(RUN_KIND, unposted=True)
        )

    def check(self, version: int, post: bool = True) -> list[RuleOutcome]:
        """Every rule over the store as it is, for data `version`; with `post`, each event is
        claimed and posted, else (a dry run) only returned."""
        watcher = Watcher(self.store, self.app, self.today)
        outcomes = []
        for rule in self.app.alerts:
            outcome = RuleOutcome(rule.name)
            try:
                only = self._audience(rule) if post else None
                seen = watcher.observe(rule, only)
                outcome.events = due_events(rule, version, seen, last_said(self.store, rule.name))
                if post:
                    self._claim_and_post(rule, version, outcome)
            except SharedChannelRefused as error:
                outcome.detail = str(error)
            except Exception as error:  # one rule's fault never stops the others
                log.exception("alert %s: checking data version %s failed", rule.name, version)
                outcome.detail = repr(error)
            outcomes.append(outcome)
        return outcomes

    def _audience(self, rule: AlertRule) -> str | None:
        """The partner a channel shared with it may hear of (None: our own channel)."""
        if self.client is None:
            raise RuntimeError("the alert job has no Slack client")
        what = f"alert {rule.name}"
        partner = audience_or_refusal(self.store, self.client, self.app.access, rule.channel, what)
        if partner is not None and (rule.kpi == "sync" or rule.scope == "program"):
            raise SharedChannelRefused(word("faults.alert_shared", channel=rule.channel, what=what))
        return partner

    def _claim_and_post(self, rule: AlertRule, version: int, outcome: RuleOutcome) -> None:
        claimed = [
            e
            for e in outcome.events
            if self.store.claim(e.key, SEND_LOG_KIND, self.replica, e.detail())
        ]
        outcome.events = claimed
        for event in claimed:
            if event.kind == "baseline":  # the tier first seen: remembered, told to nobody
                self.store.mark_sent(event.key, None)
        told = [e for e in claimed if e.kind != "baseline"]
        if told:
            outcome.posted = self._post(rule, version, told)

    # --- posting -----------------------------------------------------------------------------

    def _post(self, rule: AlertRule, version: int, events: list[AlertEvent]) -> bool:
        """Posts one message of `events` and records it; False when Slack refused (the claims
        stay open and are retried after the stale time)."""
        if self.client is None:
            raise RuntimeError("the alert job has no Slack client")
        message = render("alert", rule=rule, events=events, currency=self.app.currency)
        try:
            response = self.client.chat_postMessage(
                channel=rule.channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata=keyed_metadata(ALERT_EVENT, post_key(rule.name, version)),
            )
        except SlackApiError as error:
            log.error(
                "alert %s: Slack refused the post to %s (%s); it is retried in %s",
                rule.name,
                rule.channel,
                error.response.get("error"),
                self.stale,
            )
            return False
        ts = str(response["ts"])
        for event in events:
            self.store.mark_sent(event.key, ts)
        log.info(
            "alert %s: %d event(s) posted to %s (ts %s)", rule.name, len(events), rule.channel, ts
        )
        return True

    def _retry_stale(self) -> None:
        """Posts the events whose claim was never posted and is older than the stale time."""
        if self.client is None:
            return
        cutoff = (self.clock() - self.stale).astimezone(UTC).replace(tzinfo=None)
        groups: dict[tuple[str, int], list[tuple[AlertEvent, datetime]]] = defaultdict(list)
        for row in self.store.claims(SEND_LOG_KIND, "alert:", unposted=True):
            if row["claimed_at"] < cutoff and row.get("detail"):
                event = AlertEvent.of(row["detail"])
                groups[(event.rule, event.version)].append((event, row["claimed_at"]))
        rules = {rule.name: rule for rule in self.app.alerts}
        for (name, version), found in groups.items():
            taken = [
                (event, at)
                for event, at in found
                if self.store.reclaim_stale(event.key, self.replica, self.stale)
            ]
            if not taken:
                continue
            rule = rules.get(name)
            if rule is None:  # the rule left app.yaml: its open claims are closed unposted
                for event, _ in taken:
                    self.store.mark_sent(event.key, None)
                continue
            since = min(at for _, at in taken).replace(tzinfo=UTC) - HISTORY_MARGIN
            ts = self._already_posted(rule, version, since)
            if ts is not None:
                for event, _ in taken:
                    self.store.mark_sent(event.key, ts)
                continue
            told = [e for e, _ in taken if e.kind != "baseline"]
            if told:
                self._post(rule, version, told)

    def _already_posted(self, rule: AlertRule, version: int, since: datetime) -> str | None:
        assert self.client is not None
        if rule.channel.startswith("#"):
            return None  # the history needs a channel id; the post may repeat
        try:
            return find_keyed_post(
                self.client, rule.channel, ALERT_EVENT, post_key(rule.name, version), since
            )
        except SlackApiError as error:
            subject = f"alert {rule.name} in {rule.channel}"
            if history_unreadable(error, log, subject, "channels:history and groups:history"):
                return None
            log.error("alert %s: cannot read %s's history: %s", rule.name, rule.channel, error)
            return None
