"""The real Bolt app behind its real HTTP server on loopback, talking to a FakeSlack: requests
signed as Slack signs them, answers read from the fake's response_urls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from slack_bolt import App

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


class SettlingExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, counting the work it has not finished: `settle` waits for none,
    so a test can say "nothing more came" once the bot has really finished, not after a nap."""

    def __init__(self) -> None:
        super().__init__(max_workers=5, thread_name_prefix="listener")
        self._unfinished = 0
        self._changed = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._changed:
            self._unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Future[Any]) -> None:
        with self._changed:
            self._unfinished -= 1
            self._changed.notify_all()

    def settle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self._unfinished} listener(s) still running")
                self._changed.wait(left)


def settle(app: App, timeout: float = 10.0) -> None:
    """Returns once every listener `app` (built with a SettlingExecutor) started has finished."""
    executor = app.listener_runner.listener_executor
    assert isinstance(executor, SettlingExecutor), "build the app with a SettlingExecutor"
    executor.settle(timeout)


class Bot:
    def __init__(
        self,
        url: str,
        fake: FakeSlack,
        store: Store,
        services: BotServices,
        listeners: SettlingExecutor,
    ) -> None:
        self.url, self.fake, self.store, self.services = url, fake, store, services
        self.listeners = listeners

    def settle(self, timeout: float = 10.0) -> None:
        """Returns once every listener the bot started has finished (answers, records)."""
        self.listeners.settle(timeout)

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
    listeners = SettlingExecutor()
    app, services = build_app(
        store, config, token="xoxb-test", signing_secret=SECRET, api_url=fake.api_url,
        today=lambda: TODAY, listener_executor=listeners, **options,
    )  # fmt: skip
    server = http_server(
        app, store, "127.0.0.1", 0, "/slack/events", None, services.facts.workspace_problem
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/slack/events"
        yield Bot(url, fake, store, services, listeners)
    finally:
        server.shutdown()
        server.server_close()
