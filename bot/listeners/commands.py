"""The `/partner-kpi` slash command: ack at once, then answer through response_url."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.access import Decision
from bot.blockkit import Message
from bot.gate import answer_request
from bot.intents import parse
from bot.listeners.replies import reply
from bot.services import BotServices
from bot.slack_request import SlackRequest


def handle_command(ack: Any, command: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Answers one slash command; a plain function so tests can call it with fakes."""
    ack()
    text = command.get("text", "").strip()

    def produce(decision: Decision) -> Message:
        return services.answers(decision).answer(parse(text, services.today()))

    reply(respond, answer_request(services, SlackRequest.of_command(command), produce))


def register(app: App, services: BotServices) -> None:
    @app.command(services.config.app.slack.command)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        handle_command(ack, command, respond, services)
