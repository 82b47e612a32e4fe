"""Registers every kind of listener on the Bolt app (one module per kind, each with register)."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, events, home
from bot.services import BotServices


def register_listeners(app: App, services: BotServices) -> None:
    commands.register(app, services)
    actions.register(app, services)
    events.register(app, services)
    services.home = home.register(app, services)
    from bot.surveys import listeners as surveys  # survey DMs: action ids survey_*

    surveys.register(app, services)
