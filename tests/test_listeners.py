"""The listeners' logic in milliseconds: handlers called directly with typed `Ack` and `Respond`
fakes and Slack's facts served from memory (the bolt-python starter template's shape). The
wire-level tests (test_slack_app.py, test_access.py) keep the real Bolt app and HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.access import FactUnavailable, Workspace
from bot.listeners.actions import handle_action
from bot.listeners.commands import handle_command
from bot.services import BotServices
from bot.slack_facts import ChannelSharing, SlackFacts
from kpi.store import Store, open_store
from settings.app import AppConfig, LoadedConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.test_slack_app import seed

TODAY = date(2026, 11, 22)


@dataclass
class Ack:
    calls: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1


@dataclass
class Sent:
    status_code: int = 200
    body: str = '{"ok":true}'


@dataclass
class Respond:
    """Records what a handler sent to response_url; Slack accepts each post."""

    posts: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **message: Any) -> Sent:
        self.posts.append(message)
        return Sent()

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.posts) == 1, self.posts
        return self.posts[0]


class MemoryFacts(SlackFacts):
    """Slack's answers from a dict; a user or channel missing from it is a failed lookup."""

    def __init__(
        self, users: dict[str, dict[str, Any]], shared: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/api/"))
        self._workspace = Workspace("T1")
        self.users, self.shared = users, shared

    def user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            raise FactUnavailable("users.info answered ratelimited (HTTP 429)")
        return self.users[user_id]

    def group_members(self, group: str) -> frozenset[str]:
        raise FactUnavailable("usergroups.users.list answered ratelimited (HTTP 429)")

    def channel_sharing(self, channel: str) -> ChannelSharing:
        return ChannelSharing(channel, channel in self.shared)


def member(user_id: str, **flags: Any) -> dict[str, Any]:
    return {
        "id": user_id,
        "team_id": "T1",
        "profile": {"email": f"{user_id}@ourco.example"},
        **flags,
    }


@pytest.fixture
def services(tmp_path: Path) -> Iterator[BotServices]:
    store: Store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seed(store)
    app = AppConfig.model_validate(
        {"access": {"users": ["U1", "UX"], "external": {"domains": {"acme.example": "P1"}}}}
    )
    users = {
        "U1": member("U1"),
        "U2": member("U2"),
        "UX": member("UX", team_id="T2", profile={"email": "pat@acme.example"}),
    }
    yield BotServices(
        store=store,
        config=LoadedConfig(app, None, Path("."), "unused"),
        client=WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/api/"),
        today=lambda: TODAY,
        facts=MemoryFacts(users, shared=frozenset({"CEXT"})),
    )
    store.engine.dispose()


def command(text: str, user: str = "U1", channel: str = "C1") -> dict[str, Any]:
    return {"command": "/partner-kpi", "text": text, "user_id": user, "user_name": user,
            "channel_id": channel, "team_id": "T1"}  # fmt: skip


def click(action_id: str, partner: str, user: str = "U1", channel: str = "C1") -> dict[str, Any]:
    value = json.dumps({"partner_id": partner, "period": "last-90d"})
    return {
        "user": {"id": user, "username": user, "team_id": "T1"},
        "channel": {"id": channel},
        "trigger_id": f"t-{action_id}-{partner}-{user}-{channel}",
        "actions": [{"action_id": action_id, "value": value, "action_ts": "1.2"}],
    }


def test_a_command_is_acked_then_answered_once(services: BotServices) -> None:
    ack, respond = Ack(), Respond()
    handle_command(ack, command("acme"), respond, services)
    assert ack.calls == 1
    post = respond.only
    assert post["response_type"] == "ephemeral" and post["text"].startswith("Acme Corp")


def test_a_failed_lookup_is_one_refusal_and_one_audit_row(services: BotServices) -> None:
    respond = Respond()
    handle_command(Ack(), command("program", user="UNKNOWN"), respond, services)
    assert "could not check your Slack profile" in respond.only["text"]
    (entry,) = services.store.audit_entries()
    assert entry["allowed"] is False and "ratelimited" in entry["reason"]


def test_an_external_users_forged_button_is_refused_and_audited(services: BotServices) -> None:
    respond = Respond()
    handle_action(Ack(), click("scorecard_why", "P2", user="UX"), respond, services)
    assert "your own partnership" in respond.only["text"]
    (entry,) = services.store.audit_entries()
    assert entry["allowed"] is False and "P2 is outside the asker's set" in entry["reason"]


def test_a_share_into_a_shared_channel_is_refused_to_the_clicker(services: BotServices) -> None:
    respond = Respond()
    handle_action(Ack(), click("scorecard_share", "P1", channel="CEXT"), respond, services)
    post = respond.only
    assert post["response_type"] == "ephemeral" and "shared with another" in post["text"]
    shared = Respond()
    handle_action(Ack(), click("scorecard_share", "P1", channel="C1"), shared, services)
    assert shared.only["response_type"] == "in_channel"


def test_a_member_off_the_list_is_refused(services: BotServices) -> None:
    respond = Respond()
    handle_command(Ack(), command("acme", user="U2"), respond, services)
    assert "isn't open to you" in respond.only["text"]
