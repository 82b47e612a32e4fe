"""`partner-kpi serve` in HTTP mode as a user runs it: a subprocess on a loopback port, its Web API
calls and response_url answers going to FakeSlack, requests sent over raw sockets where the test
needs to hold one half-way (waitress, bot/http_server.py)."""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

import pytest

from bot.http_server import THREADS, HttpServer
from tests.fake_slack import FakeSlack, post_to_bot, sign, slash_command_body
from tests.test_digest_processes import Serving, free_port, wait_healthy
from tests.test_socket_mode import app_yaml

SECRET = "test-signing-secret"  # the one serve_process exports
HEALTH_FIELDS = {
    "status",
    "store",
    "data_as_of",
    "data_age_seconds",
    "last_sync_status",
    "slack",  # "ok" once Slack said which workspace this is
}


@contextmanager
def serve_http(tmp_path: Path, *options: str) -> Iterator[tuple[FakeSlack, Serving]]:
    with FakeSlack() as slack:
        slack.add_user("U1", "ann")
        serving = Serving(app_yaml(tmp_path), slack, free_port(), options=options)
        try:
            wait_healthy(serving.port, serving.process)
            yield slack, serving
        finally:
            if serving.process.returncode is None:
                serving.stop()


def signed_head(port: int, body: bytes, content_length: int | None = None, **headers: str) -> bytes:
    """A slash command's request line and headers, signed for `body`, as Slack sends them."""
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body) if content_length is None else content_length),
        "Connection": "close",
        **sign(SECRET, body),
        **headers,
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return f"POST /slack/events HTTP/1.1\r\n{lines}\r\n".encode()


def read_to_close(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def wait_refused(port: int, timeout: float = 10) -> None:
    """Until the port refuses connections: the server closed its listening socket."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        except ConnectionResetError:
            pass  # in the listen queue as the socket closed: the next try is refused
        time.sleep(0.02)
    raise AssertionError(f"port {port} still accepts connections")


def test_serve_answers_a_signed_command_and_health(tmp_path: Path) -> None:
    with serve_http(tmp_path) as (slack, serving):
        base = f"http://127.0.0.1:{serving.port}"
        response_url = slack.new_response_url()
        body = slash_command_body(text="help", response_url=response_url)
        assert post_to_bot(f"{base}/slack/events", body, SECRET).status == 200
        assert slack.wait_for_response(response_url).body["text"]
        assert post_to_bot(f"{base}/slack/events", body, "not-the-secret").status == 401

        with urlopen(f"{base}/health", timeout=5) as answer:
            status, health = answer.status, json.loads(answer.read())
        assert status == 200 and set(health) == HEALTH_FIELDS
        assert health["status"] == "ok" and health["store"] == "ok" and health["slack"] == "ok"

        with socket.create_connection(("127.0.0.1", serving.port), timeout=10) as client:
            client.sendall(signed_head(serving.port, b"", content_length=2 * 2**20))
            refused = read_to_close(client)  # before a byte of the body is sent
        assert refused.startswith(b"HTTP/1.1 413 ")
        status_code, log = serving.stop()
    assert status_code == 0, log
    # The one warning is the forged request's refusal (its reason, never its body).
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert [w.split(": ", 1)[1] for w in warnings] == [
        "refused a request: the signature does not match the signing secret (headers: accept, "
        "accept-encoding, connection, content-length, content-type, host, user-agent, "
        "x-slack-request-timestamp, x-slack-signature)"
    ]
    assert "Traceback" not in log and "response_url" not in log, log


def test_sigterm_lets_a_request_under_way_finish_and_exits_0(tmp_path: Path) -> None:
    with serve_http(tmp_path) as (slack, serving):
        response_url = slack.new_response_url()
        body = slash_command_body(text="help", response_url=response_url)
        slack.stall_next("users.info", 1.0)  # and the answer after the ack takes a while
        with socket.create_connection(("127.0.0.1", serving.port), timeout=10) as client:
            client.sendall(signed_head(serving.port, body, Expect="100-continue"))
            # The server has the headers and waits for the body: a request under way.
            assert client.recv(64).startswith(b"HTTP/1.1 100 Continue")
            started = time.monotonic()
            serving.process.send_signal(signal.SIGTERM)
            wait_refused(serving.port)  # no new connections from here on
            client.sendall(body)
            answer = read_to_close(client)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        status, log = serving.stop()
        stopped_in = time.monotonic() - started
        assert status == 0 and stopped_in < 10, log
        assert slack.calls_to("users.info")  # the stalled call was made, and waited for:
        assert len(slack.responses(response_url)) == 1, log
    assert "Traceback" not in log and "WARNING" not in log, log


def test_a_client_that_sends_nothing_is_dropped_after_the_idle_timeout(tmp_path: Path) -> None:
    with (
        serve_http(tmp_path, "--idle-timeout", "1") as (_, serving),
        socket.create_connection(("127.0.0.1", serving.port), timeout=10) as silent,
        socket.create_connection(("127.0.0.1", serving.port), timeout=10) as halted,
    ):
        started = time.monotonic()
        halted.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
        wait_healthy(serving.port, serving.process)  # the others are still answered meanwhile
        assert silent.recv(1) == b"" and halted.recv(1) == b""
        dropped_after = time.monotonic() - started
        assert 1 <= dropped_after < 4, dropped_after


def test_only_a_real_backlog_of_requests_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    server = HttpServer(lambda environ, start_response: [], "127.0.0.1", 0)
    server.server_close()
    queue = logging.getLogger("waitress.queue")
    with caplog.at_level(logging.WARNING, logger="waitress.queue"):
        for depth in (1, THREADS - 1, THREADS, 3 * THREADS):
            queue.warning("Task queue depth is %d", depth)  # as waitress.task words it
    assert [record.getMessage() for record in caplog.records] == [
        f"Task queue depth is {THREADS}",
        f"Task queue depth is {3 * THREADS}",
    ]
