"""The HTTP server under `partner-kpi serve`: waitress (pure Python, a pool of threads), with the
interface of `socketserver` (`serve_forever`, `shutdown`, `server_close`, `server_port`) and a
bounded graceful stop: stop accepting, let the requests under way finish, close the rest."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger("partner_kpi.server")

THREADS = 8  # requests answered at once; Slack's are acked at once, the work runs in Bolt's pool
IDLE_TIMEOUT = 75  # s: a connection that sent and received nothing this long is closed
MAX_BODY = 2**20  # bytes: Slack's payloads are a few KB; larger bodies are refused with 413
DRAIN_SECONDS = 10.0  # at stop, for the requests under way
WAKE_SECONDS = 1.0  # the loop's poll, so the idle check runs even when nothing happens


def backlog_only(record: logging.LogRecord) -> bool:
    """A filter for waitress's "Task queue depth is N" warning, which it logs whenever a request
    waits for a worker, even for the instant a worker takes to get back to the queue (the first
    request after start, a quick second one): kept when as many requests wait as there are
    workers, a backlog worth a warning."""
    depth = record.args[0] if isinstance(record.args, tuple) and record.args else None
    return not isinstance(depth, int) or depth >= THREADS


class HttpServer:
    """A WSGI app served by waitress on `host`:`port` (0: a free port, then `server_port`).

    `serve_forever` runs the event loop in the calling thread; `stop` (safe from a signal
    handler) makes it close the listening socket, close idle connections, wait up to
    `drain_seconds` for the requests under way to be answered, and return."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        idle_timeout: int = IDLE_TIMEOUT,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        logging.getLogger("waitress.queue").addFilter(backlog_only)  # added once
        self._map: dict[int, Any] = {}
        self._server = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=THREADS,
            channel_timeout=idle_timeout,
            cleanup_interval=max(1, idle_timeout // 4),
            max_request_body_size=MAX_BODY,
            asyncore_loop_timeout=int(WAKE_SECONDS),
        )
        self._listeners = [item for item in self._map.values() if isinstance(item, BaseWSGIServer)]
        listening = self._listeners[0].socket
        assert listening is not None
        self.server_port = int(listening.getsockname()[1])
        self.drain_seconds = drain_seconds
        self.deadline: float | None = None  # set by `stop`: when the drain gives up
        self._idle = threading.Event()  # serve_forever is not running
        self._idle.set()
        self._pool_stopped = False  # create_server started the worker threads

    def serve_forever(self) -> None:
        self._idle.clear()
        try:
            while self.deadline is None:
                wasyncore.loop(timeout=WAKE_SECONDS, map=self._map, count=1)
            self._drain(self.deadline)
        finally:
            self._idle.set()

    def stop(self) -> None:
        """Asks `serve_forever` to drain and return; returns at once (a signal handler's call)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.drain_seconds
        with suppress(OSError):  # already closed: nothing to wake
            self._listeners[0].pull_trigger()  # wakes the loop from its poll

    def shutdown(self) -> None:
        """`stop`, then waits for `serve_forever` (running in another thread) to return."""
        self.stop()
        self._idle.wait()

    def server_close(self) -> None:
        if not self._pool_stopped:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
            self._pool_stopped = True
        wasyncore.close_all(self._map)

    def _drain(self, deadline: float) -> None:
        for listener in self._listeners:
            # Closes the listening socket (new connections are refused), keeps the trigger that
            # the worker threads pull when an answer is ready.
            wasyncore.dispatcher.close(listener)
        while (busy := self._close_idle()) and time.monotonic() < deadline:
            wasyncore.loop(
                timeout=min(WAKE_SECONDS, max(0.0, deadline - time.monotonic())),
                map=self._map,
                count=1,
            )
        if busy:
            log.warning("HTTP: stopped with %d request(s) still unanswered", busy)
        left = int(deadline - time.monotonic())  # waitress's bound is whole seconds
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=max(0, left))
        self._pool_stopped = True

    def _close_idle(self) -> int:
        """Closes the connections with no request under way; the number of the others."""
        busy = 0
        for channel in [item for item in self._map.values() if isinstance(item, HTTPChannel)]:
            if channel.requests or channel.request is not None or channel.total_outbufs_len:
                busy += 1
            else:
                channel.handle_close()
        return busy
