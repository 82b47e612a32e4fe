"""The `/partner-kpi` slash command: ack at once, then answer through response_url."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.access import Decision, require_goal_setter
from bot.blockkit import Message
from bot.gate import answer_request
from bot.intents import ClearGoal, SetGoal, parse
from bot.listeners.replies import reply
from bot.services import BotServices
from bot.slack_request import SlackRequest


def handle_command(ack: Any, command: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Answers one slash command; a plain function so tests can call it with fakes."""
    ack()
    text = command.get("text", "").strip()
    request = SlackRequest.of_command(command)

    def produce(decision: Decision) -> Message:
        intent = parse(text, services.today())
        if isinstance(intent, SetGoal | ClearGoal):
            require_goal_setter(
                services.config.app.access.goal_setters,
                request.user_id,
                decision,
                services.facts.group_members,
            )
            return services.answers(decision).change_goal(intent, request.user_id)
        return services.answers(decision).answer(intent)

    reply(respond, answer_request(services, request, produce))


def register(app: App, services: BotServices) -> None:
    @app.command(services.config.app.slack.command)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        handle_command(ack, command, respond, services)
