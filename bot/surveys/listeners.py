"""Clicks on survey DMs (action ids `survey_*`) and the comment modal (`survey_comment`).

An answer is committed to the store before `ack()`: Bolt answers Slack's HTTP request only once
the listener acks (process_before_response is off, and these listeners are not lazy, so Bolt
waits for the ack up to 3 s and never acks for them), so Slack never hears "ok" for an answer
the store does not have. The answer's row id is deterministic per person and round, so a
repeated delivery of the same click, or a changed answer, leaves one answer.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.listeners.once import claim_click
from bot.messages import render
from bot.services import BotServices
from bot.surveys.sender import SurveySender, parse_value
from kpi import surveys as db
from templates import word

log = logging.getLogger("partner_kpi.surveys")

ACTIONS = re.compile(r"^survey_(score_(10|[0-9])|change|comment|stop)$")
COMMENT_VIEW = "survey_comment"


def _sender(services: BotServices) -> SurveySender:
    if services.now is not None:
        return SurveySender(services.store, services.config, services.client, clock=services.now)
    return SurveySender(services.store, services.config, services.client)


def _partner_name(services: BotServices, partner_id: str) -> str | None:
    return next((p.name for p in services.store.partners() if p.id == partner_id), None)


def handle_survey_action(
    ack: Any, body: dict[str, Any], respond: Any, services: BotServices
) -> None:
    action = body["actions"][0]
    action_id: str = action["action_id"]
    clicked_by = body["user"]["id"]
    # A redelivered click still records its answer (idempotent) but posts nothing again.
    click = claim_click(services.store, body, respond)
    sender = _sender(services)
    parsed = parse_value(action.get("value", ""))
    if parsed is None:
        ack()
        return
    campaign_name, round_id, recipient = parsed
    campaign = sender.campaign(campaign_name)
    the_round = db.get_round(services.store, campaign_name, round_id)
    now = sender.clock()

    def notice(reason: str) -> None:
        if click is None:
            return
        closes = sender.when(the_round.closes_at, campaign) if the_round else ""
        message = render("survey_notice", reason=reason, closes=closes)
        click.respond(
            text=message.text,
            blocks=message.blocks,
            response_type="ephemeral",
            replace_original=False,
        )

    def show(state: str, score: int | None = None) -> None:
        if click is None:
            return
        if _show(services, sender, campaign, the_round, recipient, state, score):
            click.mark_posted()

    if action_id.startswith("survey_score_"):
        score = int(action_id.removeprefix("survey_score_"))
        result = db.record_answer(
            services.store, campaign_name, round_id, recipient, clicked_by, score, now
        )
        ack()  # only now: the answer is committed (or refused)
        if result != db.AnswerResult.RECORDED:
            notice(result)
            return
        show("answered", score)
        return
    if clicked_by != recipient:
        ack()
        notice(db.AnswerResult.NOT_RECIPIENT)
        return
    if action_id == "survey_stop":
        delivery = db.get_delivery(services.store, campaign_name, round_id, recipient)
        email = delivery.email if delivery else None
        db.opt_out(services.store, campaign_name, recipient, email, now)
        ack()
        show("stopped")
        return
    ack()
    if the_round is None:
        notice(db.AnswerResult.NO_ROUND)
        return
    if the_round.is_closed(now):
        notice(db.AnswerResult.CLOSED)
        return
    if click is None:
        return
    if action_id == "survey_change":
        show("ask")
    elif action_id == "survey_comment" and campaign is not None and campaign.comment:
        delivery = db.get_delivery(services.store, campaign_name, round_id, recipient)
        blocks = render(
            "survey_comment",
            prompt=campaign.comment,
            comment=delivery.comment if delivery else None,
        ).blocks
        view = {
            "type": "modal",
            "callback_id": COMMENT_VIEW,
            "private_metadata": action["value"],
            "title": {"type": "plain_text", "text": word("survey_comment_title")},
            "submit": {"type": "plain_text", "text": word("survey_comment_submit")},
            "close": {"type": "plain_text", "text": word("survey_comment_close")},
            "blocks": blocks,
        }
        try:
            services.client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as error:
            log.error("survey comment modal failed: %s", error.response.get("error"))
            return
        click.mark_posted()


def _show(
    services: BotServices,
    sender: SurveySender,
    campaign: Any,
    the_round: db.Round | None,
    recipient: str,
    state: str,
    score: int | None = None,
) -> bool:
    """Updates the DM (chat.update) to show the answer, the scale again, or the opt-out. An
    anonymous round keeps no score by person: the DM shows the `score` just clicked. True
    when Slack took the update."""
    if the_round is None:
        return False
    delivery = db.get_delivery(services.store, the_round.campaign, the_round.round_id, recipient)
    if delivery is None or not delivery.channel_id or not delivery.message_ts:
        return False
    message = sender.dm_message(
        campaign,
        the_round,
        _partner_name(services, delivery.partner_id),
        recipient,
        state,
        score=score if score is not None else delivery.score,
        comment=delivery.comment,
    )
    try:
        services.client.chat_update(
            channel=delivery.channel_id, ts=delivery.message_ts, **message.payload()
        )
    except SlackApiError as error:
        log.error("survey DM update failed: %s", error.response.get("error"))
        return False
    return True


def handle_comment_submission(ack: Any, body: dict[str, Any], services: BotServices) -> None:
    view = body["view"]
    parsed = parse_value(view.get("private_metadata", ""))
    if parsed is None:
        ack()
        return
    campaign_name, round_id, recipient = parsed
    values = view.get("state", {}).get("values", {})
    text = (values.get("survey_comment", {}).get("comment", {}) or {}).get("value") or ""
    sender = _sender(services)
    now: datetime = sender.clock()
    result = db.record_comment(
        services.store, campaign_name, round_id, recipient, body["user"]["id"], text, now
    )
    if result != db.AnswerResult.RECORDED:
        the_round = db.get_round(services.store, campaign_name, round_id)
        campaign = sender.campaign(campaign_name)
        closes = sender.when(the_round.closes_at, campaign) if the_round else ""
        message = render("survey_notice", reason=result, closes=closes)
        ack(response_action="errors", errors={"survey_comment": message.text[:150]})
        return
    ack()  # the comment is committed; the modal closes
    the_round = db.get_round(services.store, campaign_name, round_id)
    _show(services, sender, sender.campaign(campaign_name), the_round, recipient, "answered")


def register(app: App, services: BotServices) -> None:
    @app.action(ACTIONS)
    def on_survey_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        handle_survey_action(ack, body, respond, services)

    @app.view(COMMENT_VIEW)
    def on_comment(ack: Any, body: dict[str, Any]) -> None:
        handle_comment_submission(ack, body, services)
