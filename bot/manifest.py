"""`partner-kpi manifest`: a ready Slack app manifest for this deployment."""

from __future__ import annotations

from typing import Any

import yaml

from settings.app import AppConfig
from settings.secrets import Secrets
from templates import word

BOT_SCOPES = [
    "commands",  # the slash command
    "chat:write",  # digests and survey DMs
    "chat:write.public",  # digests into public channels the bot has not joined
    "files:write",  # digest charts
    # A stale digest claim's channel is read for the crashed replica's post (its metadata)
    # before posting again: public and private channels.
    "channels:history",
    "groups:history",
    "im:write",  # opening survey DMs
    "im:history",  # a stale survey DM claim: the crashed replica's DM is looked for first
    "users:read",  # who is asking: external or not
    "users:read.email",  # external users' partner by email domain; survey contacts
    "usergroups:read",  # access by user group; subteam_* events drop a cached member list
    # Whether a channel is shared with another organisation (conversations.info), before a
    # share, a digest or survey results are posted there; channel_shared/unshared events.
    "channels:read",
    "groups:read",
    "mpim:read",
]

#: Events that drop what the bot learned about people, groups and channels (bot/listeners/
#: events.py), so that access removed in Slack ends within seconds, not at the cache's expiry.
BOT_EVENTS = [
    "user_change",
    "team_join",
    "subteam_members_changed",
    "subteam_updated",
    "channel_shared",
    "channel_unshared",
]

#: The App Home: opening the Home tab publishes the viewer's view (bot/listeners/home.py).
#: It needs no scope of its own; views.publish and views.open take the bot token.
HOME_EVENTS = ["app_home_opened"]


class NoRequestUrl(ValueError):
    """HTTP mode without the app's public URL; the message says which setting to fill."""


def manifest(app: AppConfig, socket_mode: bool | None = None) -> dict[str, Any]:
    slack = app.slack
    if socket_mode is None:
        socket_mode = Secrets().value("SLACK_APP_TOKEN") is not None
    request_url = None
    if not socket_mode:
        if not slack.request_url:
            raise NoRequestUrl(word("faults.manifest_needs_url"))
        base = slack.request_url.rstrip("/")
        request_url = base if base.endswith(slack.path) else base + slack.path
    command: dict[str, Any] = {
        "command": slack.command,
        "description": word("manifest.command_description"),
        "usage_hint": word("manifest.command_usage"),
        "should_escape": False,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": [*BOT_EVENTS, *HOME_EVENTS]}
    if request_url:
        command["url"] = request_url
        interactivity["request_url"] = request_url
        events["request_url"] = request_url
    return {
        "display_information": {
            "name": slack.app_name,
            "description": word("manifest.description"),
        },
        "features": {
            "bot_user": {"display_name": slack.app_name, "always_online": True},
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,  # survey DMs arrive there
                "messages_tab_read_only_enabled": False,
            },
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(app: AppConfig, socket_mode: bool | None = None) -> str:
    return yaml.safe_dump(manifest(app, socket_mode), sort_keys=False)
