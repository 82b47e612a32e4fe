"""`partner-kpi serve`: the Slack app over HTTP (behind a load balancer) or Socket Mode, with a
`/health` endpoint that reports the store's reachability and the data's freshness."""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy.exc import SQLAlchemyError

from bot.drain import finish_listeners
from bot.http_server import IDLE_TIMEOUT, HttpServer
from bot.socket_health import SocketHealth
from bot.socket_mode import SocketModeRunner
from bot.verification import check_signatures_quietly
from kpi.store import Store

log = logging.getLogger("partner_kpi.server")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


#: Why Slack cannot be answered yet (the bot's workspace unknown), or None.
SlackProblem = Callable[[], str | None]


def health(
    store: Store, socket: SocketHealth | None = None, slack: SlackProblem | None = None
) -> tuple[int, dict[str, Any]]:
    """200 with the data's age when the store answers; 503 when it does not, or while Slack has
    not said which workspace this is (every request is refused then). In Socket Mode
    (`socket`) also the connection, and 503 when it has been down too long."""
    status, body = _store_health(store)
    problem = slack() if slack is not None else None
    body["slack"] = problem or "ok"
    if problem:
        status, body["status"] = 503, "error"
    if socket is not None:
        healthy, body["socket_mode"] = socket.report()
        if not healthy:
            status, body["status"] = 503, "error"
    return status, body


def _store_health(store: Store) -> tuple[int, dict[str, Any]]:
    try:
        last = store.last_sync(status=None)
        good = store.data_as_of()
    except SQLAlchemyError as error:
        return 503, {"status": "error", "store": "unreachable", "error": type(error).__name__}
    now = datetime.now(UTC)
    return 200, {
        "status": "ok",
        "store": "ok",
        "data_as_of": good.isoformat() if good else None,
        "data_age_seconds": round((now - good).total_seconds()) if good else None,
        "last_sync_status": last.status if last else None,
    }


def wsgi_app(
    app: App,
    store: Store,
    path: str | None,
    socket: SocketHealth | None = None,
    slack_problem: SlackProblem | None = None,
) -> WsgiApp:
    """Slack's requests on `path` (HTTP mode; None in Socket Mode, where no signed request
    comes), `/health` beside them, 404 elsewhere."""
    check_signatures_quietly(app)  # a refused request's body is never logged
    slack = SlackRequestHandler(app)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = environ.get("PATH_INFO", "")
        if path is not None and route == path:
            return slack(environ, start_response)
        if route == "/health":
            status, body = health(store, socket, slack_problem)
            text = json.dumps(body).encode()
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(f"{status} {reason}", [("Content-Type", "application/json")])
            return [text]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    return application


def http_server(
    app: App,
    store: Store,
    host: str,
    port: int,
    path: str | None,
    socket: SocketHealth | None = None,
    slack_problem: SlackProblem | None = None,
    idle_timeout: int = IDLE_TIMEOUT,
) -> HttpServer:
    return HttpServer(wsgi_app(app, store, path, socket, slack_problem), host, port, idle_timeout)


def settle_heap() -> None:
    """Leaves the objects built at start-up (the SDKs, SQLAlchemy's metadata, the templates)
    out of every later garbage collection. They live as long as the process, and a scorecard
    allocates thousands of short-lived objects, enough to trigger full collections that would
    otherwise scan all of them: this cuts the scorecard's p95 by about 40% (bench/)."""
    gc.freeze()


def serve(
    app: App,
    store: Store,
    host: str,
    port: int,
    path: str,
    socket: SocketModeRunner | None = None,
    idle_timeout: int = IDLE_TIMEOUT,
    slack_problem: SlackProblem | None = None,
    listening: Callable[[], None] = lambda: None,
) -> bool:
    """Runs until SIGTERM: HTTP mode, or Socket Mode over `socket` (already started, so its
    token is known good) with only `/health` on HTTP. Either way SIGTERM stops taking requests
    and lets those under way and the listeners answering them finish, within bounds. True when
    listeners were still running at the bound (the caller then exits without waiting for them).
    `listening` runs once the port is bound (the scheduler starts there: a port in use stops
    serve before any job has run).
    """
    settle_heap()
    if socket is None:
        server = http_server(
            app, store, host, port, path, None, slack_problem, idle_timeout=idle_timeout
        )
        log.info("listening on http://%s:%s%s (and /health)", host, server.server_port, path)
        listening()
        with _on_sigterm(server.stop):
            server.serve_forever()
        server.server_close()
        bound = (server.deadline or time.monotonic()) - time.monotonic()
        unfinished = not finish_listeners(app, bound)
        if unfinished:
            log.warning("HTTP: stopped with listeners still running")
        return unfinished
    server = http_server(
        app, store, host, port, None, socket.health, slack_problem, idle_timeout=idle_timeout
    )
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("Socket Mode; /health on http://%s:%s/health", host, server.server_port)
    listening()
    try:
        # SIGTERM's SystemExit (set by the CLI) ends `run`; `close` closes the connection with a
        # close frame and lets the listeners finish.
        socket.run()
    finally:
        socket.close()
        server.shutdown()
        server.server_close()
    return socket.unfinished


@contextmanager
def _on_sigterm(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM calls `stop` instead of ending the process at once (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
