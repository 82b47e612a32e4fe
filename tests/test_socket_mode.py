"""Socket Mode on the wire: the bot's runner against a loopback websocket server that behaves as
Slack's Socket Mode (tests/fake_socket_mode.py), its Web API calls and response_url answers going
to the loopback FakeSlack."""

from __future__ import annotations

import json
import socket as stdlib_socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from bot.server import http_server
from bot.slack_app import build_app
from bot.socket_health import SocketHealth
from bot.socket_mode import AppTokenError, SocketModeRunner
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.fake_slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_TOKEN,
    FakeSlack,
    block_action_body,
    event_callback_body,
    slash_command_body,
)
from tests.fake_socket_mode import FakeSocketMode, Link
from tests.slack_bot import TODAY, SettlingExecutor, settle
from tests.test_digest_processes import Serving, free_port, serve_process, wait_healthy
from tests.test_slack_app import seed


@dataclass
class SocketBot:
    slack: FakeSlack
    socket: FakeSocketMode
    runner: SocketModeRunner
    health: SocketHealth
    health_url: str

    def command(self, text: str, **options: object) -> tuple[str, str]:
        """A slash command on the newest connection: (envelope_id, response_url)."""
        response_url = self.slack.new_response_url()
        body = slash_command_body(text=text, response_url=response_url)
        return self.socket.send(body, **options), response_url  # type: ignore[arg-type]

    def wait_for_health(self, status: int, timeout: float = 10) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (answer := self.get_health())[0] != status and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer[0] == status, answer
        return answer[1]

    def get_health(self) -> tuple[int, dict[str, object]]:
        try:
            with urlopen(self.health_url, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except HTTPError as error:
            return error.code, json.loads(error.read())


def runner_for(
    store: Store, slack: FakeSlack, app_token: str, health: SocketHealth
) -> SocketModeRunner:
    config = LoadedConfig(
        AppConfig.model_validate({"access": {"users": ["U1"]}}), None, Path("."), ""
    )
    app, _ = build_app(
        store, config, token=DEFAULT_TOKEN, signing_secret="", api_url=slack.api_url,
        today=lambda: TODAY, listener_executor=SettlingExecutor(),
    )  # fmt: skip
    return SocketModeRunner(app, app_token, health, api_url=slack.api_url)


@pytest.fixture
def bot(store: Store) -> Iterator[SocketBot]:
    seed(store)
    with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        slack.add_user("U1", "ann", email="ann@ourco.example")
        health = SocketHealth(down_after=1.0)
        runner = runner_for(store, slack, DEFAULT_APP_TOKEN, health)
        runner.start()
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        server = http_server(runner.app, store, "127.0.0.1", 0, None, health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/health"
        try:
            yield SocketBot(slack, socket, runner, health, url)
        finally:
            runner.close(drain_seconds=5)
            thread.join(timeout=5)
            server.shutdown()
            server.server_close()


def test_command_click_and_event_are_acked_at_once_and_answered_once(bot: SocketBot) -> None:
    link = bot.socket.wait_for_link()
    assert link.number == 1
    envelope_id, response_url = bot.command("acme")
    ack = bot.socket.wait_for_ack(envelope_id)
    assert ack.latency < 3
    post = bot.slack.wait_for_response(response_url)
    assert "Acme" in json.dumps(post.body)

    value = json.dumps({"partner_id": "P1", "period": "last-90d"})
    shared = bot.slack.new_response_url()
    click = bot.socket.send(block_action_body("scorecard_share", value, response_url=shared))
    assert bot.socket.wait_for_ack(click).latency < 3
    assert bot.slack.wait_for_response(shared).body["response_type"] == "in_channel"

    event = bot.socket.send(event_callback_body({"type": "app_home_opened", "user": "U1"}))
    assert bot.socket.wait_for_ack(event).latency < 3

    settle(bot.runner.app)  # a second answer, were there one, has come by now
    for envelope in (envelope_id, click, event):
        assert len(bot.socket.acks(envelope)) == 1
    assert len(bot.slack.responses(response_url)) == 1 and len(bot.slack.responses(shared)) == 1


@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
def test_refresh_opens_the_new_connection_first_and_reads_it_at_once(
    bot: SocketBot, reason: str
) -> None:
    old = bot.socket.wait_for_link()
    bot.socket.disconnect(reason)
    new = bot.socket.wait_for_link(2)
    # The new connection came up while the old one was still there. (The old may be closed
    # by now, right after the new one's hello: compare the server's moments, not `old.open`.)
    assert old.closed_at is None or old.closed_at > new.hello_at
    envelope_id, _ = bot.command("acme")  # the moment the new connection said hello
    ack = bot.socket.wait_for_ack(envelope_id)
    assert ack.link == new.number and ack.latency < 1
    closed = bot.socket.wait_for_close(old)
    assert closed.close_code == 1000  # closed with a close frame, not dropped
    assert bot.health.report()[1]["connections_lost"] == 0


@pytest.mark.parametrize("how", ["eof", "reset", pytest.param("blackhole", marks=pytest.mark.slow)])
def test_a_broken_connection_is_replaced_within_15s_without_burning_cpu(
    bot: SocketBot, how: str
) -> None:
    bot.socket.wait_for_link()
    cpu, started = time.process_time(), time.monotonic()
    bot.socket.drop(how)  # type: ignore[arg-type]
    bot.socket.wait_for_link(2, timeout=15)
    waited = time.monotonic() - started
    spent = time.process_time() - cpu
    assert waited < 15 and spent < 2, f"{how}: back after {waited:.1f}s, {spent:.2f}s of CPU"
    envelope_id, response_url = bot.command("acme")
    assert bot.socket.wait_for_ack(envelope_id).latency < 3
    bot.slack.wait_for_response(response_url)
    assert bot.health.report()[1]["connections_lost"] == 1


def test_health_goes_503_while_no_connection_opens_and_back_to_200(bot: SocketBot) -> None:
    bot.socket.wait_for_link()
    status, body = bot.get_health()
    assert status == 200 and body["socket_mode"]["connected"] is True  # type: ignore[index]
    assert body["store"] == "ok"

    opener, bot.slack.socket_url = bot.slack.socket_url, None  # Slack refuses new connections
    bot.socket.drop("reset")
    body = bot.wait_for_health(503)
    assert body["status"] == "error"
    assert body["socket_mode"]["connected"] is False  # type: ignore[index]
    assert body["store"] == "ok" and "data_as_of" in body  # the store's fields stay

    bot.slack.socket_url = opener
    body = bot.wait_for_health(200, timeout=15)
    assert body["socket_mode"]["connections_lost"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("xapp-1-A1-1-wrong", "SLACK_APP_TOKEN was refused by Slack (invalid_auth)"),
        ("", "SLACK_APP_TOKEN was refused by Slack (not_authed)"),
        (
            DEFAULT_TOKEN,
            "SLACK_APP_TOKEN is not an app-level token (Slack says "
            "not_allowed_token_type; it looks like the bot token (xoxb-…))",
        ),
    ],
)
def test_a_wrong_app_token_is_one_sentence_naming_the_variable(
    store: Store, token: str, expected: str
) -> None:
    with FakeSlack() as slack, FakeSocketMode(slack):
        runner = runner_for(store, slack, token, SocketHealth())
        with pytest.raises(AppTokenError) as error:
            runner.start()
    message = str(error.value)
    assert message.startswith(expected)
    assert "(xapp-…) with the connections:write scope" in message and "\n" not in message
    assert token not in message or not token


def test_socket_mode_off_for_the_app_is_one_sentence(store: Store) -> None:
    with FakeSlack() as slack:  # no FakeSocketMode: apps.connections.open answers an error
        runner = runner_for(store, slack, DEFAULT_APP_TOKEN, SocketHealth())
        with pytest.raises(AppTokenError, match="check that Socket Mode is on for the app"):
            runner.start()


# -- `partner-kpi serve` as a user runs it ---------------------------------------------------------

SOCKET_ENV: dict[str, str | None] = {
    "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
    "SLACK_SIGNING_SECRET": None,  # Socket Mode never needs it
}


def app_yaml(tmp_path: Path) -> Path:
    config = tmp_path / "app.yaml"
    config.write_text(
        f"database_url: sqlite:///{tmp_path / 'store.db'}\nslack: {{socket_down_seconds: 2}}\n"
    )
    return config


@dataclass
class RunningServe:
    """`partner-kpi serve` in Socket Mode, connected to the fakes; `stop` sends SIGTERM."""

    slack: FakeSlack
    socket: FakeSocketMode
    port: int
    serving: Serving
    link: Link
    stopped_in: float = 0.0
    status: int | None = None
    log: str = ""

    def stop(self) -> None:
        started = time.monotonic()
        self.status, self.log = self.serving.stop()
        self.stopped_in = time.monotonic() - started


@contextmanager
def serve_socket_mode(tmp_path: Path) -> Iterator[RunningServe]:
    with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        slack.add_user("U1", "ann")
        port = free_port()
        serving = Serving(app_yaml(tmp_path), slack, port, SOCKET_ENV)
        try:
            wait_healthy(port, serving.process)
            served = RunningServe(slack, socket, port, serving, socket.wait_for_link())
            yield served
        finally:
            if serving.process.returncode is None:
                serving.stop()


def test_serve_in_socket_mode_answers_and_stops_with_a_close_frame(tmp_path: Path) -> None:
    with serve_socket_mode(tmp_path) as served:
        response_url = served.slack.new_response_url()
        body = slash_command_body(text="help", response_url=response_url)
        assert served.socket.wait_for_ack(served.socket.send(body)).latency < 3
        served.slack.wait_for_response(response_url)
        with pytest.raises(HTTPError) as refused:  # no signed requests in Socket Mode
            urlopen(f"http://127.0.0.1:{served.port}/slack/events", timeout=5)
        assert refused.value.code == 404
        served.stop()
        assert served.status == 0, served.log
        assert served.socket.wait_for_close(served.link).close_code == 1000, served.log
    assert "Traceback" not in served.log and "WARNING" not in served.log, served.log
    assert "Socket Mode: connection 1 open" in served.log


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLACK_APP_TOKEN": "xapp-1-A1-1-revoked"}, "(invalid_auth)"),
        ({"SLACK_APP_TOKEN": DEFAULT_TOKEN}, "not an app-level token"),
    ],
)
def test_serve_with_a_wrong_app_token_exits_2_with_one_sentence(
    tmp_path: Path, env: dict[str, str | None], expected: str
) -> None:
    config = app_yaml(tmp_path)
    with FakeSlack() as slack, FakeSocketMode(slack):
        process = serve_process(config, slack, free_port(), {**SOCKET_ENV, **env})
        _, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    (line,) = [line for line in err.splitlines() if line.startswith("partner-kpi:")]
    assert expected in line and "SLACK_APP_TOKEN" in line
    assert "Traceback" not in err


def test_close_lets_a_running_listener_finish_then_sends_a_close_frame(bot: SocketBot) -> None:
    link = bot.socket.wait_for_link()
    finished = threading.Event()

    @bot.runner.app.command("/slow")
    def slow(ack, respond) -> None:  # type: ignore[no-untyped-def]
        ack()
        time.sleep(1.0)
        respond("done")
        finished.set()

    response_url = bot.slack.new_response_url()
    body = slash_command_body(command="/slow", response_url=response_url)
    bot.socket.wait_for_ack(bot.socket.send(body))
    started = time.monotonic()
    bot.runner.close(drain_seconds=5)
    assert finished.is_set() and 0.5 < time.monotonic() - started < 5
    assert not bot.runner.unfinished
    assert bot.slack.wait_for_response(response_url).body["text"] == "done"
    assert bot.socket.wait_for_close(link).close_code == 1000


def test_close_waits_for_a_stuck_listener_no_longer_than_its_bound(bot: SocketBot) -> None:
    bot.socket.wait_for_link()
    release = threading.Event()

    @bot.runner.app.command("/stuck")
    def stuck(ack) -> None:  # type: ignore[no-untyped-def]
        ack()
        release.wait(30)

    bot.socket.wait_for_ack(bot.socket.send(slash_command_body(command="/stuck")))
    started = time.monotonic()
    bot.runner.close(drain_seconds=1)
    assert time.monotonic() - started < 2 and bot.runner.unfinished
    release.set()


@pytest.mark.slow
def test_sigterm_with_a_hung_listener_still_exits_0_within_its_bound(tmp_path: Path) -> None:
    # A response_url whose server never answers: the listener answering through it hangs for
    # slack_sdk's 30 s timeout, longer than serve's 10 s drain.
    with (
        stdlib_socket.create_server(("127.0.0.1", 0)) as silent,
        serve_socket_mode(tmp_path) as served,
    ):
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/response/hung"
        body = slash_command_body(text="help", response_url=hung)
        served.socket.wait_for_ack(served.socket.send(body))
        silent.settimeout(10)
        waiting, _ = silent.accept()  # the listener now waits on a response_url that never answers
        served.stop()
        waiting.close()
        assert served.status == 0 and served.stopped_in < 14, served.log
        assert served.socket.wait_for_close(served.link).close_code == 1000
    assert "stopped with listeners still running" in served.log
    assert "Traceback" not in served.log


@pytest.mark.parametrize(("error", "status"), [("fatal_error", 500), ("ratelimited", 429)])
def test_slack_failing_at_start_is_retried_not_fatal(store: Store, error: str, status: int) -> None:
    with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        slack.fail_next("apps.connections.open", error, status=status)
        runner = runner_for(store, slack, DEFAULT_APP_TOKEN, SocketHealth())
        runner.start()  # no AppTokenError: Slack's trouble, not the token's
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            socket.wait_for_link(timeout=10)
            assert len(slack.calls_to("apps.connections.open")) == 2
        finally:
            runner.close(drain_seconds=1)
            thread.join(timeout=5)


def test_a_refresh_that_cannot_open_yet_still_reports_the_old_connection_lost(
    bot: SocketBot,
) -> None:
    bot.socket.wait_for_link()
    opener, bot.slack.socket_url = bot.slack.socket_url, None
    bot.socket.disconnect("refresh_requested")
    bot.slack.wait_for_call("apps.connections.open", where=lambda call: not call.ok)
    bot.socket.drop("reset")  # Slack ends the old connection before a new one could open
    assert bot.wait_for_health(503)["socket_mode"]["connected"] is False  # type: ignore[index]
    bot.slack.socket_url = opener
    bot.wait_for_health(200, timeout=15)
    bot.socket.wait_for_link(2)
