"""Sending survey rounds: who is asked, the DMs (exactly once per campaign, round and person),
the one reminder, and the results at the close.

Every DM has the send-log key `survey:<campaign>:<round>:<Slack user>`. A replica claims the
key before it opens the DM and marks it sent with the message's ts afterwards, so however many
replicas tick, and however often one restarts, nobody is asked twice in a round. A post Slack
refused gives its claim back at once (nothing was posted); a claim left by a replica that died
mid-send is taken over after `stale` — unless the DM's ts was already recorded, then it is only
marked sent. A replica that died after Slack accepted the DM but before recording it leaves no
ts; each DM carries its key in message metadata, so the taker-over finds it in the DM's history
(`bot.keyed_posts`, with im:history) and records it instead of asking again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.channel_audience import SharedChannelRefused, audience_or_refusal
from bot.jobs import Clock, cron_trigger, next_fire, recent_fires, utc_now
from bot.keyed_posts import (
    HISTORY_MARGIN,
    find_keyed_post,
    history_unreadable,
    keyed_metadata,
)
from bot.messages import render
from bot.surveys.rounds import RoundTimes, round_times
from kpi import surveys as db
from kpi.formulas import nps_of
from kpi.models import Partner
from kpi.store import Store
from settings.app import LoadedConfig
from settings.slack import SurveyCampaign

log = logging.getLogger("partner_kpi.surveys")

FOUND_FOR = timedelta(days=30)
MISSING_FOR = timedelta(days=1)
#: How long after its close an ad-hoc round (from `survey send`) is still looked after by the
#: tick, so its results are posted even when no replica ran at the close itself.
FOLLOW_CLOSED = timedelta(days=30)
#: The event_type of the message metadata each survey DM carries, with its send-log key.
SURVEY_EVENT = "partner_kpi_survey"


def dm_key(campaign: str, round_id: str, user_id: str) -> str:
    return f"survey:{campaign}:{round_id}:{user_id}"


def button_value(campaign: str, round_id: str, user_id: str) -> str:
    return f"{campaign}|{round_id}|{user_id}"


def parse_value(value: str) -> tuple[str, str, str] | None:
    parts = value.split("|")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


@dataclass(frozen=True)
class Contact:
    partner_id: str
    partner_name: str
    email: str


@dataclass
class Audience:
    """Who a round asks: resolved (Slack user per person), unresolved emails, opted out."""

    asked: list[tuple[Contact, str]] = field(default_factory=list)
    unresolved: list[Contact] = field(default_factory=list)
    opted_out: list[tuple[Contact, str]] = field(default_factory=list)
    lookup_errors: list[tuple[Contact, str]] = field(default_factory=list)


@dataclass
class SendReport:
    campaign: str
    round_id: str
    sent: int = 0
    already: int = 0
    elsewhere: int = 0
    failed: int = 0
    unresolved: int = 0
    opted_out: int = 0


class SurveySender:
    """Rounds of every campaign for one replica; `clock` is "now" (aware)."""

    def __init__(
        self,
        store: Store,
        config: LoadedConfig,
        client: WebClient | None,
        *,
        clock: Clock = utc_now,
        replica: str = "surveys",
        stale: timedelta | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.app = config.app
        self.client = client
        self.clock = clock
        self.replica = replica
        self.stale = stale or timedelta(minutes=self.app.scheduler.stale_claim_minutes)

    # --- campaigns and people -------------------------------------------------------------

    def campaign(self, name: str) -> SurveyCampaign | None:
        return next((c for c in self.app.surveys if c.name.casefold() == name.casefold()), None)

    def zone(self, campaign: SurveyCampaign | None) -> ZoneInfo:
        return ZoneInfo((campaign.timezone if campaign else None) or self.app.timezone)

    def when(self, moment: datetime, campaign: SurveyCampaign | None) -> str:
        return moment.astimezone(self.zone(campaign)).strftime("%a %d %b %Y, %H:%M %Z")

    def contacts(self, campaign: SurveyCampaign, now: datetime) -> list[Contact]:
        """The audience's contacts, one per email (the first partner by name keeps it)."""
        today = now.astimezone(self.zone(campaign)).date()
        audience = campaign.audience
        tiers = {tier.casefold() for tier in audience.tiers}
        ids = set(audience.partners)
        found: dict[str, Contact] = {}
        for partner in self.store.partners():
            if partner.left_on is not None and partner.left_on <= today:
                continue
            if not audience.all and not (
                partner.id in ids or (partner.tier or "").casefold() in tiers
            ):
                continue
            for email in _emails(partner):
                found.setdefault(email, Contact(partner.id, partner.name, email))
        return list(found.values())

    def resolve(self, contact_list: list[Contact], now: datetime, lookup: bool = True) -> Audience:
        """Each contact's Slack user, from the cache or users.lookupByEmail (cached)."""
        audience = Audience()
        seen: set[str] = set()
        for contact in contact_list:
            cached = db.cached_contact(self.store, contact.email, now, FOUND_FOR, MISSING_FOR)
            if cached is None and lookup and self.client is not None:
                cached = self._look_up(contact.email, now)
            if cached is None:
                audience.lookup_errors.append((contact, "not looked up yet"))
                continue
            status, user_id = cached
            if status == "error":
                audience.lookup_errors.append((contact, user_id or "error"))
            elif status != "found" or user_id is None:
                audience.unresolved.append(contact)
            elif user_id not in seen:
                seen.add(user_id)
                audience.asked.append((contact, user_id))
        return audience

    def _look_up(self, email: str, now: datetime) -> tuple[str, str | None]:
        assert self.client is not None
        try:
            user = self.client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as error:
            code = str(error.response.get("error") or "error")
            if code == "users_not_found":
                db.save_contact(self.store, email, "not_found", None, now, code)
                return "not_found", None
            log.error("users.lookupByEmail for a contact failed: %s", code)
            db.save_contact(self.store, email, "error", None, now, code)
            return "error", code
        if user.get("deleted") or user.get("is_bot"):
            db.save_contact(self.store, email, "not_found", None, now, "deleted")
            return "not_found", None
        db.save_contact(self.store, email, "found", str(user["id"]), now, None)
        return "found", str(user["id"])

    def audience(self, campaign: SurveyCampaign, now: datetime, lookup: bool = True) -> Audience:
        resolved = self.resolve(self.contacts(campaign, now), now, lookup)
        stopped = db.opted_out(self.store, campaign.name)
        asked: list[tuple[Contact, str]] = []
        for contact, user_id in resolved.asked:
            (resolved.opted_out if user_id in stopped else asked).append((contact, user_id))
        resolved.asked = asked
        return resolved

    # --- the round --------------------------------------------------------------------------

    def current_round(self, campaign: SurveyCampaign, now: datetime) -> RoundTimes | None:
        starts = recent_fires(cron_trigger(campaign, self.app.timezone), now, 1)
        return round_times(campaign, starts[0]) if starts else None

    def round_to_send(self, campaign: SurveyCampaign, now: datetime) -> RoundTimes:
        """The round a send now belongs to: the scheduled round open now, else the open round
        an earlier send started (one ad-hoc round until it closes), else one starting now."""
        scheduled = self.current_round(campaign, now)
        if scheduled is not None and scheduled.open_at(now):
            return scheduled
        for stored in reversed(db.rounds(self.store, campaign.name)):
            if stored.started_at <= now < stored.closes_at:
                return RoundTimes(
                    campaign.name,
                    stored.round_id,
                    stored.started_at,
                    stored.remind_at,
                    stored.closes_at,
                )
        return round_times(campaign, now.replace(second=0, microsecond=0))

    def send_round(
        self, campaign: SurveyCampaign, times: RoundTimes, now: datetime | None = None
    ) -> SendReport:
        """DMs everyone of the round not DMed yet; safe to call again and from any replica."""
        now = now or self.clock()
        report = SendReport(campaign.name, times.round_id)
        the_round = db.ensure_round(
            self.store,
            campaign.name,
            times.round_id,
            times.started_at,
            times.remind_at,
            times.closes_at,
            campaign.anonymous,
        )
        if the_round.is_closed(now):
            return report
        audience = self.audience(campaign, now)
        report.unresolved = len(audience.unresolved)
        report.opted_out = len(audience.opted_out)
        report.failed += len(audience.lookup_errors)
        for contact, user_id in audience.asked:
            outcome = self._send_one(campaign, the_round, contact, user_id, now)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome == "failed" and self._rate_limited:
                break  # Slack said to slow down even after retries: the next tick goes on
        if report.failed == 0 and report.elsewhere == 0:
            key = f"survey-round:{campaign.name}:{times.round_id}"
            if self.store.claim(key, "survey-round", self.replica):
                self.store.mark_sent(key, None)
        log.info(
            "survey %s round %s: %d sent, %d sent before, %d failed, %d not found in Slack",
            campaign.name,
            times.round_id,
            report.sent,
            report.already,
            report.failed,
            report.unresolved,
        )
        return report

    _rate_limited = False

    def _send_one(
        self,
        campaign: SurveyCampaign,
        the_round: db.Round,
        contact: Contact,
        user_id: str,
        now: datetime,
    ) -> str:
        key = dm_key(campaign.name, the_round.round_id, user_id)
        state = self.store.claim_state(key)
        if state is not None and state["posted_at"] is not None:
            return "already"
        detail = {"campaign": campaign.name, "round": the_round.round_id, "user": user_id}
        claimed = self.store.claim(key, "survey", self.replica, detail)
        taken_over = not claimed and (
            state is not None and self.store.reclaim_stale(key, self.replica, self.stale)
        )
        if not (claimed or taken_over):
            return "elsewhere"
        db.add_delivery(
            self.store,
            campaign.name,
            the_round.round_id,
            user_id,
            contact.email,
            contact.partner_id,
        )
        known = db.get_delivery(self.store, campaign.name, the_round.round_id, user_id)
        if known is not None and known.message_ts:  # posted before a crash: only the mark is due
            self.store.mark_sent(key, known.message_ts)
            return "already"
        if self.client is None:
            raise RuntimeError("the survey sender has no Slack client")
        message = self.dm_message(campaign, the_round, contact.partner_name, user_id, "ask")
        try:
            channel = self.client.conversations_open(users=user_id)["channel"]["id"]
            if taken_over:  # did a crashed claimer post it after all? (any since the start)
                since = the_round.started_at - HISTORY_MARGIN
                found = self._posted_before(channel, key, since, campaign.name)
                if found is not None:
                    db.delivered(
                        self.store, campaign.name, the_round.round_id, user_id, channel, found, now
                    )
                    self.store.mark_sent(key, found)
                    return "already"
            posted = self.client.chat_postMessage(
                channel=channel, metadata=keyed_metadata(SURVEY_EVENT, key), **message.payload()
            )
        except SlackApiError as error:
            code = error.response.get("error")
            self._rate_limited = code == "ratelimited"
            log.error("survey %s: the DM to %s failed: %s", campaign.name, user_id, code)
            db.release_claim(self.store, key, self.replica)
            return "failed"
        ts = str(posted["ts"])
        db.delivered(
            self.store, campaign.name, the_round.round_id, user_id, str(posted["channel"]), ts, now
        )
        self.store.mark_sent(key, ts)
        return "sent"

    def _posted_before(self, channel: str, key: str, since: datetime, campaign: str) -> str | None:
        """The ts of the DM a crashed claimer posted for `key` (Slack answered, the claimer died
        before recording it), from the DM's history; None when there is none, or when the app
        lacks im:history (then it is said, and the DM is sent rather than lost)."""
        assert self.client is not None
        try:
            return find_keyed_post(self.client, channel, SURVEY_EVENT, key, since)
        except SlackApiError as error:
            if history_unreadable(error, log, f"survey {campaign}, the DM", "im:history"):
                return None
            raise

    def dm_message(
        self,
        campaign: SurveyCampaign | None,
        the_round: db.Round,
        partner_name: str | None,
        user_id: str,
        state: str,
        score: int | None = None,
        comment: str | None = None,
    ) -> Any:
        anonymous = the_round.anonymous
        return render(
            "survey_dm",
            state=state,
            question=campaign.question if campaign else "Survey",
            partner=partner_name,
            value=button_value(the_round.campaign, the_round.round_id, user_id),
            score=score,
            comment=None if anonymous else comment,
            comment_prompt=None if anonymous or campaign is None else campaign.comment,
            anonymous=anonymous,
            closes=self.when(the_round.closes_at, campaign),
        )

    # --- reminder and close -----------------------------------------------------------------

    def remind(self, campaign: SurveyCampaign, the_round: db.Round, now: datetime) -> int:
        """One reminder, in the DM's thread, to each person who has not answered."""
        marker = f"survey-reminders:{campaign.name}:{the_round.round_id}"
        if (self.store.claim_state(marker) or {}).get("posted_at") is not None:
            return 0
        stopped = db.opted_out(self.store, campaign.name)
        sent = pending = 0
        for delivery in db.deliveries(self.store, campaign.name, the_round.round_id):
            if delivery.answered or not delivery.message_ts or delivery.slack_user_id in stopped:
                continue
            key = f"survey-remind:{campaign.name}:{the_round.round_id}:{delivery.slack_user_id}"
            state = self.store.claim_state(key)
            if state is not None and state["posted_at"] is not None:
                continue
            if not (
                self.store.claim(key, "survey-remind", self.replica)
                or (state is not None and self.store.reclaim_stale(key, self.replica, self.stale))
            ):
                pending += 1
                continue
            message = render(
                "survey_notice", reason="reminder", closes=self.when(the_round.closes_at, campaign)
            )
            try:
                posted = self.client.chat_postMessage(  # type: ignore[union-attr]
                    channel=str(delivery.channel_id),
                    thread_ts=delivery.message_ts,
                    reply_broadcast=True,
                    **message.payload(),
                )
            except SlackApiError as error:
                log.error("survey reminder failed: %s", error.response.get("error"))
                db.release_claim(self.store, key, self.replica)
                pending += 1
                continue
            self.store.mark_sent(key, str(posted["ts"]))
            sent += 1
        if pending == 0 and self.store.claim(marker, "survey-round", self.replica):
            self.store.mark_sent(marker, None)
        return sent

    def results(
        self, campaign: SurveyCampaign | None, the_round: db.Round, only: str | None = None
    ) -> dict[str, Any]:
        """The round's numbers: sent, answered, NPS per partner and overall, comments; with
        `only`, those of that partner alone (for a channel shared with it)."""
        name = the_round.campaign
        delivered = [
            d
            for d in db.deliveries(self.store, name, the_round.round_id)
            if d.sent_at is not None and only in (None, d.partner_id)
        ]
        answers = [
            a
            for a in db.round_answers(self.store, name, the_round.round_id)
            if only in (None, a.partner_id)
        ]
        names = {p.id: p.name for p in self.store.partners()}
        by_partner: dict[str, list[int]] = {}
        for answer in answers:
            by_partner.setdefault(answer.partner_id, []).append(answer.score)
        partners = [
            {"name": names.get(pid, pid), "nps": nps_of(scores), "answers": len(scores)}
            for pid, scores in sorted(by_partner.items(), key=lambda kv: names.get(kv[0], kv[0]))
        ]
        comments = [
            {"partner": names.get(a.partner_id, a.partner_id), "score": a.score, "text": a.comment}
            for a in sorted(answers, key=lambda a: (names.get(a.partner_id, ""), a.id))
            if a.comment and not the_round.anonymous
        ]
        sent = len(delivered)
        return {
            "campaign": name,
            "round": self.when(the_round.started_at, campaign),
            "question": campaign.question if campaign else name,
            "sent": sent,
            "answered": len(answers),
            "rate": len(answers) / sent if sent else None,
            "overall": nps_of([a.score for a in answers]),
            "partners": partners,
            "comments": comments,
            "anonymous": the_round.anonymous,
        }

    def close(self, campaign: SurveyCampaign, the_round: db.Round, now: datetime) -> str | None:
        """Posts the round's results to the results channel, once; returns the message's ts."""
        key = f"survey-close:{campaign.name}:{the_round.round_id}"
        state = self.store.claim_state(key)
        if state is not None and state["posted_at"] is not None:
            return None
        if not (
            self.store.claim(key, "survey-close", self.replica, {"campaign": campaign.name})
            or (state is not None and self.store.reclaim_stale(key, self.replica, self.stale))
        ):
            return None
        try:
            only = audience_or_refusal(
                self.store,
                self.client,  # type: ignore[arg-type]
                self.app.access,
                campaign.results_channel,
                f"survey {campaign.name} results",
            )
        except SharedChannelRefused:
            db.release_claim(self.store, key, self.replica)
            return None
        if the_round.anonymous:
            db.erase_salt(self.store, campaign.name, the_round.round_id)
        unresolved = 0 if only else len(self.audience(campaign, now, lookup=False).unresolved)
        message = render(
            "survey_results", unresolved=unresolved, **self.results(campaign, the_round, only)
        )
        try:
            posted = self.client.chat_postMessage(  # type: ignore[union-attr]
                channel=campaign.results_channel, **message.payload()
            )
        except SlackApiError as error:
            log.error(
                "survey %s: the results could not be posted to %s: %s",
                campaign.name,
                campaign.results_channel,
                error.response.get("error"),
            )
            db.release_claim(self.store, key, self.replica)
            return None
        ts = str(posted["ts"])
        self.store.mark_sent(key, ts)
        return ts

    # --- the tick ---------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Everything due now, for every campaign: the round's DMs, its reminder, the close of
        a round that ended. Idempotent: call it as often as you like, from any replica."""
        now = self.clock()
        done: list[str] = []
        for campaign in self.app.surveys:
            try:
                done.extend(self._campaign_tick(campaign, now))
            except Exception:  # one campaign's trouble never stops the others
                log.exception("survey %s: tick failed", campaign.name)
        return done

    def _campaign_tick(self, campaign: SurveyCampaign, now: datetime) -> list[str]:
        done = []
        trigger = cron_trigger(campaign, self.app.timezone)
        scheduled = [round_times(campaign, start) for start in recent_fires(trigger, now, 2)]
        if scheduled and scheduled[0].open_at(now):
            times = scheduled[0]
            marker = f"survey-round:{campaign.name}:{times.round_id}"
            if (self.store.claim_state(marker) or {}).get("posted_at") is None:
                report = self.send_round(campaign, times, now)
                done.append(f"send {campaign.name} {times.round_id}: {report.sent} sent")
        for the_round in self._rounds_to_follow(campaign, now, [t.round_id for t in scheduled]):
            if not the_round.is_closed(now):
                if the_round.remind_at and now >= the_round.remind_at:
                    count = self.remind(campaign, the_round, now)
                    if count:
                        done.append(f"remind {campaign.name} {the_round.round_id}: {count}")
            elif self.close(campaign, the_round, now):
                done.append(f"close {campaign.name} {the_round.round_id}")
        return done

    def _rounds_to_follow(
        self, campaign: SurveyCampaign, now: datetime, scheduled: list[str]
    ) -> list[db.Round]:
        """The stored rounds whose reminder or close may be due: the schedule's latest two and
        any other (ad-hoc, from `survey send`) open or closed within FOLLOW_CLOSED."""
        stored = db.rounds(self.store, campaign.name)
        return [r for r in stored if r.round_id in scheduled or r.closes_at >= now - FOLLOW_CLOSED]

    def next_round(self, campaign: SurveyCampaign, now: datetime) -> datetime | None:
        return next_fire(cron_trigger(campaign, self.app.timezone), now)


def _emails(partner: Partner) -> list[str]:
    seen = []
    for email in partner.contact_emails:
        clean = email.strip().lower()
        if clean and "@" in clean and clean not in seen:
            seen.append(clean)
    return seen
