"""Survey state in the store: rounds, DMs sent, answers, opt-outs and the email → Slack cache.

Answers go to `survey_responses` (which the KPI engine reads) with a deterministic id, one per
person per round, so a repeated or changed answer overwrites the same row: the last answer
before the round closes is the one that counts. The id is
`survey:<campaign>:<round>:<Slack user>`, or for an anonymous round
`survey:<campaign>:<round>:<HMAC-SHA256(round salt, Slack user)>`. The salt is a random value
of the round, kept in `survey_rounds` only while the round is open and erased at its close, so
afterwards nothing in the database links an anonymous answer to a person. An anonymous answer
keeps only partner and score: no respondent, no comment, and `submitted_at` is the round's
start (an answer's own time could be matched against the time its DM was answered).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from kpi import schema
from kpi.models import SurveyResponse
from kpi.store import KINDS, Store
from kpi.survey_schema import survey_contacts, survey_deliveries, survey_opt_outs, survey_rounds

SOURCE = "survey"


def now_utc() -> datetime:
    return datetime.now(UTC)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True)
class Round:
    campaign: str
    round_id: str
    started_at: datetime
    remind_at: datetime | None
    closes_at: datetime
    anonymous: bool
    salt: str | None

    def is_closed(self, now: datetime) -> bool:
        return now >= self.closes_at


@dataclass(frozen=True)
class Delivery:
    campaign: str
    round_id: str
    slack_user_id: str
    email: str
    partner_id: str
    channel_id: str | None
    message_ts: str | None
    sent_at: datetime | None
    answered: bool
    score: int | None
    comment: str | None


class AnswerResult:
    RECORDED = "recorded"
    CLOSED = "closed"
    NOT_RECIPIENT = "not_recipient"
    NO_ROUND = "no_round"
    NO_ANSWER = "no_answer"  # a comment before any score


# --- contacts --------------------------------------------------------------------------------


def cached_contact(
    store: Store, email: str, now: datetime, found_for: timedelta, missing_for: timedelta
) -> tuple[str, str | None] | None:
    """(status, Slack user) from the cache, or None when it must be looked up again."""
    with store.engine.connect() as connection:
        row = connection.execute(
            select(survey_contacts).where(survey_contacts.c.email == email)
        ).first()
    if row is None:
        return None
    age = _naive(now) - row.checked_at
    if row.status == "found" and age < found_for:
        return "found", row.slack_user_id
    if row.status == "not_found" and age < missing_for:
        return "not_found", None
    return None


def save_contact(
    store: Store, email: str, status: str, user_id: str | None, now: datetime, error: str | None
) -> None:
    values = {
        "email": email,
        "slack_user_id": user_id,
        "status": status,
        "error": error,
        "checked_at": _naive(now),
    }
    with store.transaction() as connection:
        store.insert_or_update(connection, survey_contacts, [values], ["email"])


def contacts(store: Store, emails: list[str]) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(survey_contacts).where(survey_contacts.c.email.in_(emails))
        )
        return {row.email: dict(row._mapping) for row in rows}


# --- rounds ----------------------------------------------------------------------------------


def _round_of(row: Any) -> Round:
    return Round(
        campaign=row.campaign,
        round_id=row.round_id,
        started_at=_aware(row.started_at) or row.started_at,
        remind_at=_aware(row.remind_at),
        closes_at=_aware(row.closes_at) or row.closes_at,
        anonymous=bool(row.anonymous),
        salt=row.salt,
    )


def ensure_round(
    store: Store,
    campaign: str,
    round_id: str,
    started_at: datetime,
    remind_at: datetime | None,
    closes_at: datetime,
    anonymous: bool,
) -> Round:
    """The round's row, written by the first replica to start it (its times then stand)."""
    row = {
        "campaign": campaign,
        "round_id": round_id,
        "started_at": _naive(started_at),
        "remind_at": _naive(remind_at) if remind_at else None,
        "closes_at": _naive(closes_at),
        "anonymous": anonymous,
        "salt": secrets.token_hex(32) if anonymous else None,
    }
    with store.transaction() as connection:
        store.insert_or_keep(connection, survey_rounds, [row], ["campaign", "round_id"])
    found = get_round(store, campaign, round_id)
    assert found is not None
    return found


def get_round(store: Store, campaign: str, round_id: str) -> Round | None:
    r = survey_rounds
    with store.engine.connect() as connection:
        row = connection.execute(
            select(r).where(r.c.campaign == campaign, r.c.round_id == round_id)
        ).first()
    return _round_of(row) if row is not None else None


def rounds(store: Store, campaign: str) -> list[Round]:
    r = survey_rounds
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(r).where(r.c.campaign == campaign).order_by(r.c.started_at)
        ).all()
    return [_round_of(row) for row in rows]


def erase_salt(store: Store, campaign: str, round_id: str) -> None:
    """At the close of an anonymous round: nothing links its answers to people any more."""
    r = survey_rounds
    with store.transaction() as connection:
        connection.execute(
            update(r).where(r.c.campaign == campaign, r.c.round_id == round_id).values(salt=None)
        )


# --- deliveries ------------------------------------------------------------------------------


def _delivery_of(row: Any) -> Delivery:
    return Delivery(
        campaign=row.campaign,
        round_id=row.round_id,
        slack_user_id=row.slack_user_id,
        email=row.email,
        partner_id=row.partner_id,
        channel_id=row.channel_id,
        message_ts=row.message_ts,
        sent_at=_aware(row.sent_at),
        answered=bool(row.answered),
        score=row.score,
        comment=row.comment,
    )


def add_delivery(
    store: Store, campaign: str, round_id: str, user_id: str, email: str, partner_id: str
) -> None:
    row = {
        "campaign": campaign,
        "round_id": round_id,
        "slack_user_id": user_id,
        "email": email,
        "partner_id": partner_id,
        "answered": False,
    }
    with store.transaction() as connection:
        store.insert_or_keep(
            connection, survey_deliveries, [row], ["campaign", "round_id", "slack_user_id"]
        )


def _one_delivery(campaign: str, round_id: str, user_id: str) -> ColumnElement[bool]:
    """The condition that picks one person's delivery of a round."""
    d = survey_deliveries
    return and_(d.c.campaign == campaign, d.c.round_id == round_id, d.c.slack_user_id == user_id)


def delivered(
    store: Store, campaign: str, round_id: str, user_id: str, channel_id: str, ts: str,
    now: datetime,
) -> None:  # fmt: skip
    d = survey_deliveries
    with store.transaction() as connection:
        connection.execute(
            update(d)
            .where(_one_delivery(campaign, round_id, user_id))
            .values(channel_id=channel_id, message_ts=ts, sent_at=_naive(now))
        )


def get_delivery(store: Store, campaign: str, round_id: str, user_id: str) -> Delivery | None:
    d = survey_deliveries
    with store.engine.connect() as connection:
        row = connection.execute(
            select(d).where(_one_delivery(campaign, round_id, user_id))
        ).first()
    return _delivery_of(row) if row is not None else None


def deliveries(store: Store, campaign: str, round_id: str) -> list[Delivery]:
    d = survey_deliveries
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(d)
            .where(d.c.campaign == campaign, d.c.round_id == round_id)
            .order_by(d.c.partner_id, d.c.email)
        ).all()
    return [_delivery_of(row) for row in rows]


# --- answers ---------------------------------------------------------------------------------


def answer_id(the_round: Round, user_id: str) -> str:
    prefix = f"survey:{the_round.campaign}:{the_round.round_id}:"
    if not the_round.anonymous:
        return prefix + user_id
    if the_round.salt is None:
        raise ValueError("the round is closed; its anonymous answers can no longer be keyed")
    digest = hmac.new(the_round.salt.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:40]


def round_prefix(campaign: str, round_id: str) -> str:
    return f"survey:{campaign}:{round_id}:"


def _open_round(connection: Connection, campaign: str, round_id: str, now: datetime) -> Round | str:
    """The round, while it takes answers; else why not (NO_ROUND or CLOSED)."""
    r = survey_rounds
    row = connection.execute(
        select(r).where(r.c.campaign == campaign, r.c.round_id == round_id)
    ).first()
    if row is None:
        return AnswerResult.NO_ROUND
    the_round = _round_of(row)
    return AnswerResult.CLOSED if the_round.is_closed(now) else the_round


def record_answer(
    store: Store,
    campaign: str,
    round_id: str,
    recipient: str,
    clicked_by: str,
    score: int,
    now: datetime,
) -> str:
    """Stores one answer (committed when this returns RECORDED); the same person's later
    answer in the round replaces it."""
    if clicked_by != recipient:
        return AnswerResult.NOT_RECIPIENT
    d = survey_deliveries
    with store.transaction() as connection:
        the_round = _open_round(connection, campaign, round_id, now)
        if isinstance(the_round, str):
            return the_round
        row = connection.execute(
            select(d).where(_one_delivery(campaign, round_id, recipient))
        ).first()
        if row is None:
            return AnswerResult.NOT_RECIPIENT
        anonymous = the_round.anonymous
        response = SurveyResponse(
            id=answer_id(the_round, recipient),
            partner_id=row.partner_id,
            respondent=None if anonymous else row.email,
            campaign_id=campaign,
            score=score,
            comment=None if anonymous else row.comment,
            submitted_at=the_round.started_at if anonymous else now,
        )
        _upsert_response(store, connection, response)
        connection.execute(
            update(d)
            .where(_one_delivery(campaign, round_id, recipient))
            .values(answered=True, score=None if anonymous else score)
        )
    return AnswerResult.RECORDED


def record_comment(
    store: Store,
    campaign: str,
    round_id: str,
    recipient: str,
    clicked_by: str,
    comment: str,
    now: datetime,
) -> str:
    """The follow-up comment of a person who answered (never kept for an anonymous round)."""
    if clicked_by != recipient:
        return AnswerResult.NOT_RECIPIENT
    d, s = survey_deliveries, schema.survey_responses
    text = comment.strip() or None
    with store.transaction() as connection:
        the_round = _open_round(connection, campaign, round_id, now)
        if isinstance(the_round, str):
            return the_round
        if the_round.anonymous:
            return AnswerResult.RECORDED  # dropped on purpose: see the module's docstring
        row = connection.execute(
            select(d).where(_one_delivery(campaign, round_id, recipient))
        ).first()
        if row is None:
            return AnswerResult.NOT_RECIPIENT
        if not row.answered:
            return AnswerResult.NO_ANSWER
        key = answer_id(the_round, recipient)
        stored = connection.execute(select(s).where(s.c.id == key)).first()
        if stored is None:
            return AnswerResult.NO_ANSWER
        response = (
            KINDS[SurveyResponse]
            .from_row(stored)
            .model_copy(update={"comment": text, "submitted_at": now})
        )
        _upsert_response(store, connection, response)
        connection.execute(
            update(d).where(_one_delivery(campaign, round_id, recipient)).values(comment=text)
        )
    return AnswerResult.RECORDED


def _upsert_response(store: Store, connection: Connection, response: SurveyResponse) -> None:
    row = KINDS[SurveyResponse].to_row(response, SOURCE)
    store.insert_or_update(connection, schema.survey_responses, [row])


def round_answers(store: Store, campaign: str, round_id: str) -> list[SurveyResponse]:
    s = schema.survey_responses
    prefix = round_prefix(campaign, round_id)
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(s).where(
                s.c.campaign_id == campaign,
                func.substr(s.c.id, 1, len(prefix)) == prefix,
            )
        ).all()
    return [KINDS[SurveyResponse].from_row(row) for row in rows]


# --- opt-outs --------------------------------------------------------------------------------


def opt_out(store: Store, campaign: str, user_id: str, email: str | None, now: datetime) -> None:
    row = {"campaign": campaign, "slack_user_id": user_id, "email": email, "at": _naive(now)}
    with store.transaction() as connection:
        store.insert_or_keep(connection, survey_opt_outs, [row], ["campaign", "slack_user_id"])


def opted_out(store: Store, campaign: str) -> set[str]:
    o = survey_opt_outs
    with store.engine.connect() as connection:
        return set(
            connection.execute(select(o.c.slack_user_id).where(o.c.campaign == campaign)).scalars()
        )


def release_claim(store: Store, key: str, claimed_by: str) -> None:
    """Gives back a send-log claim whose post Slack refused (so nothing was posted): the next
    tick may try again at once instead of after the stale-claim time."""
    log = schema.send_log
    with store.transaction() as connection:
        connection.execute(
            delete(log).where(
                log.c.key == key, log.c.posted_at.is_(None), log.c.claimed_by == claimed_by
            )
        )
