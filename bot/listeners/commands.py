"""The `/partner-kpi` slash command: ack at once, then answer through response_url."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.intents import parse
from bot.listeners.replies import reply
from bot.messages import render
from bot.slack_app import BotServices

log = logging.getLogger("partner_kpi.slack")


def handle_command(ack: Any, command: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Answers one slash command; a plain function so tests can call it with fakes."""
    ack()
    text = command.get("text", "").strip()
    asker = services.asker(command["user_id"], command.get("channel_id"), command.get("user_name"))
    decision = services.decide(asker, f"{command.get('command', '')} {text}".strip())
    if not decision.allowed:
        reason = "no_partner" if asker.external else "not_allowed"
        reply(respond, render("refused", reason=reason, command=services.config.app.slack.command))
        return
    try:
        message = services.answers(decision).answer(parse(text, services.today()))
    except Exception:
        log.exception("answering %r failed", text)
        message = services.answers(decision).error(
            "Something went wrong on my side; the details are in the bot's log. Try again soon."
        )
    reply(respond, message)


def register(app: App, services: BotServices) -> None:
    @app.command(services.config.app.slack.command)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        handle_command(ack, command, respond, services)
