"""Socket Mode: Slack's envelopes over a websocket, handed to the Bolt app and acked at once.

One reader thread per connection (a blocking read, no polling) and the `websockets` library's
keepalive (a ping every PING_INTERVAL seconds, the connection given up PING_TIMEOUT seconds
after an unanswered one) notice a dead connection within about ten seconds; a lost connection is
replaced at once, then with exponential back-off. On Slack's `disconnect` notice the new
connection is opened *before* the old one is closed, so no envelope waits behind the old one.
Why this and not one of slack_sdk's clients: the README's Slack section (bench/socket_mode.py).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.adapter.socket_mode.internals import run_bolt_app
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from bot.drain import finish_listeners
from bot.socket_health import SocketHealth
from templates import word, word_table

log = logging.getLogger("partner_kpi.socket_mode")

APP_TOKEN_ENV = "SLACK_APP_TOKEN"  # noqa: S105 (a variable's name)
EXPECTED = word("faults.app_token_expected")
PING_INTERVAL = 4.0
PING_TIMEOUT = 4.0
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 1.0
BACKOFF_MAX = 30.0
HANDOVER_SECONDS = 3.0  # how long a refreshed connection may finish its envelopes' acks
ACK_DRAIN_SECONDS = 3.0  # at shutdown, for envelopes being dispatched to get their ack out
MAX_MESSAGE = 16 * 2**20
TOKEN_KINDS = word_table("faults.app_token_kinds")
BAD_TOKEN = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})


class AppTokenError(Exception):
    """SLACK_APP_TOKEN cannot open a Socket Mode connection: one sentence for the user."""


class Unreachable(Exception):
    """No connection this time (network, Slack's side): worth another try."""


def token_problem(error: str, token: str) -> str:
    """The sentence for Slack's refusal of the app token (never the token itself)."""
    said = {"env": APP_TOKEN_ENV, "expected": EXPECTED, "error": error}
    if error in BAD_TOKEN:
        return word("faults.app_token_refused", **said)
    if error == "not_allowed_token_type":
        kind = TOKEN_KINDS.get(token[:5], TOKEN_KINDS["other"])
        return word("faults.app_token_wrong_kind", kind=kind, **said)
    if error == "missing_scope":
        return word("faults.app_token_no_scope", **said)
    return word("faults.socket_mode_refused", **said)


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` (0-based): 1, 2, 4 … 30, each ±20%."""
    return float(min(BACKOFF_MAX, 2.0**attempt) * random.uniform(0.8, 1.2))


def ack_message(request: SocketModeRequest, response: BoltResponse) -> dict[str, Any]:
    """The ack for an envelope, with the listener's answer as its payload (what Bolt's own
    Socket Mode adapters send). An envelope no listener handled is acked too, bare: Slack would
    only send it again."""
    ack: dict[str, Any] = {"envelope_id": request.envelope_id}
    body = response.body
    if response.status == 200 and body:
        content_type = response.headers.get("content-type", [""])[0]
        ack["payload"] = (
            json.loads(body) if content_type.startswith("application/json") else {"text": body}
        )
    return ack


class _Link:
    """One websocket to Slack, and how many of its envelopes are still being acked."""

    def __init__(self, ws: ClientConnection, number: int) -> None:
        self.ws = ws
        self.number = number
        self.pending = 0
        self.idle = threading.Condition()
        self.hello = threading.Event()

    def send(self, text: str) -> bool:
        try:
            self.ws.send(text)
            return True
        except (ConnectionClosed, OSError):
            return False

    def begin(self) -> None:
        with self.idle:
            self.pending += 1

    def end(self) -> None:
        with self.idle:
            self.pending -= 1
            self.idle.notify_all()

    def retire(self, grace: float) -> None:
        """Closes with a close frame once its envelopes are acked (at most `grace` seconds)."""
        with self.idle:
            self.idle.wait_for(lambda: self.pending == 0, grace)
        self.ws.close()


class SocketModeRunner:
    """Keeps one Socket Mode connection open for `app`, reporting to `health`."""

    def __init__(
        self,
        app: App,
        app_token: str,
        health: SocketHealth,
        *,
        api_url: str | None = None,
        workers: int = 10,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self.app = app
        self._token = app_token
        self._api = WebClient(base_url=api_url or app.client.base_url)
        self.health = health
        self._ping = (ping_interval, ping_timeout)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="socket-envelope")
        self._dispatching: set[Future[None]] = set()
        self._events: queue.Queue[tuple[str, _Link | None]] = queue.Queue()
        self._current: _Link | None = None
        self._numbers = iter(range(1, 2**62))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.unfinished = False  # after `close`: listeners were still running at its deadline

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the first connection. AppTokenError when Slack refuses the token; any other
        failure is retried by `run`, with back-off."""
        try:
            self._current = self._open()
        except Unreachable as error:
            log.warning("Socket Mode: no connection yet (%s); retrying", error)
            self._events.put(("lost", None))

    def run(self) -> None:
        """Replaces lost and refreshed connections until `close` (or an exception, such as
        SystemExit from the SIGTERM handler, in this thread)."""
        while not self._stopping.is_set():
            what, link = self._events.get()
            if link is not self._current or self._stopping.is_set():
                continue  # an old connection going away, or the stop sentinel
            if what == "lost":
                self.health.lost()
                self._current = None
            fresh = self._open_with_backoff()
            if fresh is None or self._stopping.is_set():
                if fresh is not None:
                    fresh.ws.close()
                return
            self._current = fresh
            if what == "refresh" and link is not None:
                log.info("Socket Mode: connection %d replaces %d", fresh.number, link.number)
                threading.Thread(
                    target=link.retire, args=(HANDOVER_SECONDS,), name="socket-retire"
                ).start()

    def close(self, drain_seconds: float = 10.0) -> None:
        """Stops taking envelopes, lets those being acked finish, closes the connection with a
        close frame, then waits for the app's listeners still answering (all within
        `drain_seconds`)."""
        deadline = time.monotonic() + drain_seconds
        self._stopping.set()
        self._events.put(("stop", None))
        with self._lock:
            dispatching = list(self._dispatching)
        wait(dispatching, timeout=min(ACK_DRAIN_SECONDS, drain_seconds))
        link, self._current = self._current, None
        if link is not None:
            link.ws.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.unfinished = not finish_listeners(self.app, deadline - time.monotonic())
        if self.unfinished:
            log.warning("Socket Mode: stopped with listeners still running")

    # -- connections ----------------------------------------------------------------------------

    def _open_with_backoff(self) -> _Link | None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                return self._open()
            except (AppTokenError, Unreachable) as error:
                delay = backoff(attempt)
                attempt += 1
                log.error("Socket Mode: %s Retrying in %.0f s.", _sentence(error), delay)
            if self._stopping.wait(delay):
                break
        return None

    def _open(self) -> _Link:
        """A new connection, read in its own thread once Slack's hello arrived."""
        try:
            url = self._api.apps_connections_open(app_token=self._token)["url"]
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown_error"))
            if code == "ratelimited" or error.response.status_code >= 500:
                raise Unreachable(f"apps.connections.open answered {code}") from None
            raise AppTokenError(token_problem(code, self._token)) from None
        except OSError as error:
            raise Unreachable(f"apps.connections.open failed: {error}") from None
        interval, timeout = self._ping
        try:
            ws = connect(
                url,
                open_timeout=OPEN_TIMEOUT,
                ping_interval=interval,
                ping_timeout=timeout,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_MESSAGE,
            )
        except (OSError, InvalidHandshake, TimeoutError) as error:
            raise Unreachable(f"the websocket did not open: {error}") from None
        link = _Link(ws, next(self._numbers))
        reader = threading.Thread(
            target=self._read, args=(link,), name=f"socket-{link.number}", daemon=True
        )
        reader.start()
        if not link.hello.wait(OPEN_TIMEOUT):
            ws.close()
            raise Unreachable("no hello from Slack")
        self.health.connected()
        log.info("Socket Mode: connection %d open", link.number)
        return link

    def _read(self, link: _Link) -> None:
        """Reads one connection until it closes; a blocking read, woken by each frame."""
        try:
            with link.ws:
                for raw in link.ws:
                    self._receive(link, raw)
        except (ConnectionClosed, OSError) as error:
            log.warning("Socket Mode: connection %d lost (%s)", link.number, error)
        finally:
            if link is self._current and not self._stopping.is_set():
                self.health.lost()  # at once, even while `run` is busy opening a refresh
            self._events.put(("lost", link))

    def _receive(self, link: _Link, raw: str | bytes) -> None:
        self.health.frame()
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("Socket Mode: a frame that is not JSON, ignored")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "hello":
            link.hello.set()
        elif kind == "disconnect":
            log.info("Socket Mode: Slack asks to reconnect (%s)", message.get("reason"))
            self._events.put(("refresh", link))
        elif isinstance(message.get("envelope_id"), str):
            if self._stopping.is_set():
                return  # unacked: Slack sends it again
            link.begin()
            future = self._pool.submit(self._dispatch, link, message)
            with self._lock:
                self._dispatching.add(future)
            future.add_done_callback(self._dispatched)

    def _dispatched(self, future: Future[None]) -> None:
        with self._lock:
            self._dispatching.discard(future)

    def _dispatch(self, link: _Link, message: dict[str, Any]) -> None:
        try:
            request = SocketModeRequest.from_dict(message)
            if request is None:
                return
            text = json.dumps(ack_message(request, run_bolt_app(self.app, request)))
            current = self._current
            if not link.send(text) and not (current is not None and current.send(text)):
                log.warning("Socket Mode: an ack found no open connection")
        except Exception:
            log.exception("Socket Mode: an envelope failed")
        finally:
            link.end()


def _sentence(error: Exception) -> str:
    text = str(error)
    return text if text.endswith(".") else text + "."
