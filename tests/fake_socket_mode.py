"""A loopback stand-in for Slack's Socket Mode side, for wire-level tests of `partner-kpi serve`.

`FakeSocketMode(fake_slack)` makes the fake's apps.connections.open hand out one-use
`ws://127.0.0.1:PORT/link/?ticket=…` URLs and serves them as Slack does: a `hello` on connect,
envelopes (`slash_commands`, `interactive`, `events_api`) with an `envelope_id`, acks recorded
with their arrival time, and `disconnect` messages (`refresh_requested`, `warning`).

The websocket server (the `websockets` library) sits behind a small TCP relay so the tests can
break a connection the ways a network does: `drop("eof")` closes it without a close frame (a
proxy's idle timeout, a server restart), `drop("reset")` sends a TCP reset, and
`drop("blackhole")` silently stops carrying bytes either way (a NAT that forgot the flow), which
only ping/pong timeouts can notice.

    with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        ... start the bot with SLACK_APP_TOKEN=DEFAULT_APP_TOKEN, SLACK_API_URL=slack.api_url
        link = socket.wait_for_link()
        envelope_id = socket.send(slash_command_body(text="help"))
        ack = socket.wait_for_ack(envelope_id)
        assert ack.latency < 3
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fake_slack import FakeSlack, Served

Fault = Literal["eof", "reset", "blackhole"]


@dataclass
class Link:
    """One websocket connection from the bot, as the server saw it."""

    number: int
    ws: ServerConnection = field(repr=False)
    hello_at: float = 0.0  # time.monotonic() when the hello went out
    closed_at: float | None = None
    close_code: int | None = None  # from the bot's close frame; 1006 when there was none

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    link: int
    latency: float  # seconds from the envelope's send to its ack's arrival


def envelope(body: bytes, *, retry_attempt: int = 0) -> dict[str, Any]:
    """The Socket Mode envelope for a request body built by fake_slack's helpers: a slash command
    (form fields), an interaction (form field `payload`) or an Events API callback (JSON)."""
    envelope_id = str(uuid.uuid4())
    if body.lstrip()[:1] == b"{":
        return {
            "envelope_id": envelope_id,
            "payload": json.loads(body),
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    if set(fields) == {"payload"}:
        payload = json.loads(fields["payload"])
        kind = payload.get("type")
        return {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "interactive",
            "accepts_response_payload": kind in ("view_submission", "block_suggestion"),
        }
    return {
        "envelope_id": envelope_id,
        "payload": fields,
        "type": "slash_commands",
        "accepts_response_payload": True,
    }


class _Relay:
    """One client connection relayed to the websocket server, breakable on demand."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.frozen = False
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.frozen:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            if not self.frozen:
                self.close()

    def break_(self, how: Fault) -> None:
        if how == "blackhole":
            self.frozen = True
            return
        if how == "reset":
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class FakeSocketMode(Served):
    """Slack's Socket Mode server on 127.0.0.1, wired to a FakeSlack's apps.connections.open."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self._lock = threading.Condition()
        self._tickets: set[str] = set()
        self._links: list[Link] = []
        self._sent: dict[str, float] = {}
        self._acks: list[Ack] = []
        self._relays: list[_Relay] = []
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self._listener: socket.socket | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        self.slack.socket_url = self._new_url
        return self

    def stop(self) -> None:
        self.slack.socket_url = None
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            relay.close()
        if self._server is not None:
            self._server.shutdown()

    # -- what a test does -----------------------------------------------------------------------

    @property
    def links(self) -> list[Link]:
        with self._lock:
            return list(self._links)

    def wait_for_link(self, count: int = 1, timeout: float = 10.0) -> Link:
        """The `count`-th connection (1 = the first), once its hello has gone out."""

        def ready() -> Link | None:
            return self._links[count - 1] if len(self._links) >= count else None

        with self._lock:
            if not self._lock.wait_for(ready, timeout):
                raise TimeoutError(f"no connection #{count} within {timeout}s")
            link = ready()
        assert link is not None
        return link

    def wait_for_close(self, link: Link, timeout: float = 10.0) -> Link:
        with self._lock:
            if not self._lock.wait_for(lambda: not link.open, timeout):
                raise TimeoutError(f"connection #{link.number} still open after {timeout}s")
        return link

    def send(self, body: bytes, link: Link | None = None, **options: Any) -> str:
        """Sends `body` (see `envelope`) on `link`, or on the newest open connection."""
        message = envelope(body, **options)
        self.send_raw(message, link)
        return str(message["envelope_id"])

    def send_raw(self, message: dict[str, Any], link: Link | None = None) -> None:
        target = link or self._newest_open()
        with self._lock:
            if "envelope_id" in message:
                self._sent[message["envelope_id"]] = time.monotonic()
        target.ws.send(json.dumps(message))

    def disconnect(self, reason: str = "refresh_requested", link: Link | None = None) -> None:
        """Slack's notice that this connection will go away (refresh_requested every few
        hours, warning before maintenance)."""
        self.send_raw(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}, link
        )

    def drop(self, how: Fault) -> None:
        """Breaks every open connection at the TCP level (see the module's docstring)."""
        with self._lock:
            relays = [r for r in self._relays if not r.frozen]
        for relay in relays:
            relay.break_(how)

    def acks(self, envelope_id: str | None = None) -> list[Ack]:
        with self._lock:
            return [a for a in self._acks if envelope_id in (None, a.envelope_id)]

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        with self._lock:
            if not self._lock.wait_for(lambda: self._ack(envelope_id), timeout):
                raise TimeoutError(f"envelope {envelope_id} not acked within {timeout}s")
            found = self._ack(envelope_id)
        assert found is not None
        return found

    # -- the server side ------------------------------------------------------------------------

    def _ack(self, envelope_id: str) -> Ack | None:
        return next((a for a in self._acks if a.envelope_id == envelope_id), None)

    def _newest_open(self) -> Link:
        with self._lock:
            for link in reversed(self._links):
                if link.open:
                    return link
        raise RuntimeError("no open Socket Mode connection")

    def _new_url(self) -> str:
        assert self._listener is not None
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        port = self._listener.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self.slack.app_id}"

    def _accept(self) -> None:
        assert self._listener is not None and self._server is not None
        upstream_address = self._server.socket.getsockname()
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(upstream_address)
            with self._lock:
                self._relays.append(_Relay(client, upstream))

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        ticket = parse_qs(urlsplit(ws.request.path).query).get("ticket", [""])[0]
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        if not known:  # Slack's URLs are good for one connection
            ws.close(1008, "invalid ticket")
            return
        link = Link(next(self._numbers), ws)
        with self._lock:
            open_count = sum(1 for other in self._links if other.open) + 1
        ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": open_count,
                    "debug_info": {
                        "host": "applink-fake",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.slack.app_id},
                }
            )
        )
        with self._lock:
            link.hello_at = time.monotonic()
            self._links.append(link)
            self._lock.notify_all()
        try:
            for raw in ws:
                self._receive(link, raw)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                link.closed_at = time.monotonic()
                link.close_code = ws.close_code
                self._lock.notify_all()

    def _receive(self, link: Link, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            return
        now = time.monotonic()
        with self._lock:
            sent = self._sent.get(envelope_id, now)
            self._acks.append(Ack(envelope_id, message.get("payload"), link.number, now - sent))
            self._lock.notify_all()
