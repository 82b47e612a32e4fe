"""Buttons on the bot's messages: pick a partner, previous period, compare, why, share."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App

from bot.answers import Answers, button_target
from bot.listeners.once import claim_click
from bot.listeners.replies import reply
from bot.messages import render
from bot.slack_app import BotServices

log = logging.getLogger("partner_kpi.slack")

CHOOSE = re.compile(r"^choose_partner_\d+$")


def handle_action(ack: Any, body: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Answers one button click; a plain function so tests can call it with fakes."""
    ack()
    click = claim_click(services.store, body, respond)  # a redelivered click posts nothing
    if click is None:
        return
    respond = click.respond
    action = body["actions"][0]
    action_id = action["action_id"]
    user = body["user"]
    channel_id = (body.get("channel") or {}).get("id")
    asker = services.asker(user["id"], channel_id, user.get("username") or user.get("name"))
    decision = services.decide(asker, f"button {action_id} {action.get('value', '')}")
    command = services.config.app.slack.command
    if not decision.allowed:
        reply(respond, render("refused", reason="not_allowed", command=command))
        return
    answers = services.answers(decision)
    target = button_target(action.get("value", ""))
    if action_id == "scorecard_share" and target is not None:
        _share(respond, answers, *target)
        return
    message = answers.press(action_id, action.get("value", ""), services.deal_url)
    # A pick from a list replaces the list; other buttons add a message under the scorecard.
    reply(respond, message, replace_original=bool(CHOOSE.match(action_id)))


def _share(respond: Any, answers: Answers, partner_id: str, period: str) -> None:
    """Posts the scorecard for the whole channel (once: the click is keyed in handle_action)."""
    message = answers.scorecard_by_id(partner_id, period)
    reply(respond, message, response_type="in_channel", replace_original=False)


def register(app: App, services: BotServices) -> None:
    pattern = re.compile(r"^(choose_partner_\d+|scorecard_(previous|compare|why|share))$")

    @app.action(pattern)
    def on_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        handle_action(ack, body, respond, services)
