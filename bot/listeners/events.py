"""Slack's change events, which drop what the bot had learned about a person, a user group or a
channel, so that a revocation (a member made a guest, removed from a group, a channel shared
with another organisation) takes effect at once instead of when the cache expires."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.manifest import BOT_EVENTS
from bot.services import BotServices
from bot.slack_facts import SlackFacts


def forget(facts: SlackFacts, event: dict[str, Any]) -> None:
    """Drops the facts `event` makes stale."""
    kind = event.get("type")
    if kind in ("user_change", "team_join"):
        user = event.get("user")
        facts.forget_user(str(user.get("id") if isinstance(user, dict) else user))
    elif kind == "subteam_members_changed":
        facts.forget_group(str(event.get("subteam_id")))
    elif kind == "subteam_updated":
        facts.forget_group(str((event.get("subteam") or {}).get("id")))
    elif kind in ("channel_shared", "channel_unshared"):
        facts.forget_channel(str(event.get("channel")))


def register(app: App, services: BotServices) -> None:
    for kind in BOT_EVENTS:

        @app.event(kind)
        def on_change(event: dict[str, Any]) -> None:
            forget(services.facts, event)
