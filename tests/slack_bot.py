"""The real Bolt app behind its real HTTP server on loopback, talking to a FakeSlack: requests
signed as Slack signs them, answers read from the fake's response_urls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from bot.server import http_server
from bot.services import BotServices
from bot.slack_app import build_app
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig
from tests.fake_slack import (
    BotReply,
    FakeSlack,
    block_action_body,
    event_callback_body,
    post_to_bot,
    slash_command_body,
)

SECRET = "test-signing-secret"
TODAY = date(2026, 11, 22)


class Bot:
    def __init__(self, url: str, fake: FakeSlack, store: Store, services: BotServices) -> None:
        self.url, self.fake, self.store, self.services = url, fake, store, services

    def command(
        self, text: str, user: str = "U1", channel: str = "C1", **fields: Any
    ) -> tuple[BotReply, str]:
        """`fields` are slash_command_body's (team_id, enterprise_id, ...)."""
        response_url = self.fake.new_response_url()
        body = slash_command_body(
            text=text, user_id=user, channel_id=channel, response_url=response_url, **fields
        )
        return post_to_bot(self.url, body, SECRET), response_url

    def click(
        self,
        action_id: str,
        value: str,
        user: str = "U1",
        retry_num: int | None = None,
        action_ts: str = "1700000001.000001",
        channel: str = "C1",
        **fields: Any,
    ) -> tuple[BotReply, str]:
        response_url = self.fake.new_response_url()
        body = block_action_body(
            action_id,
            value,
            user_id=user,
            channel_id=channel,
            response_url=response_url,
            action_ts=action_ts,
            **fields,
        )
        return post_to_bot(self.url, body, SECRET, retry_num=retry_num), response_url

    def event(self, event: dict[str, Any]) -> BotReply:
        return post_to_bot(self.url, event_callback_body(event), SECRET)

    def answer(self, text: str, user: str = "U1", channel: str = "C1", **fields: Any) -> Any:
        """The body the bot posted to the command's response_url."""
        _, url = self.command(text, user=user, channel=channel, **fields)
        return self.fake.wait_for_response(url, timeout=15).body


def start_bot(
    store: Store, fake: FakeSlack, app_config: AppConfig, **options: Any
) -> Iterator[Bot]:
    """Serves the app until the generator is closed; `options` go to build_app."""
    config = LoadedConfig(app_config, None, Path("."), "unused")
    app, services = build_app(
        store, config, token="xoxb-test", signing_secret=SECRET, api_url=fake.api_url,
        today=lambda: TODAY, **options,
    )  # fmt: skip
    server = http_server(
        app, store, "127.0.0.1", 0, "/slack/events", None, services.facts.workspace_problem
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bot(f"http://127.0.0.1:{server.server_port}/slack/events", fake, store, services)
    finally:
        server.shutdown()
        server.server_close()
