"""`serve`'s HTTP server against the wsgiref server it replaced, on the same Bolt app and store:
the latency of Slack's requests (a signed slash command until its ack, and `/health`), one at a
time and from many clients at once, each request on a new connection as Slack opens them. Run
by hand:

    python3 -m bench.http_server [--requests 300] [--clients 16]

Prints p50/p95/max in milliseconds and requests per second for each server and case (waitress's
warnings that requests wait for a free worker are silenced). Needs the dev dependencies (the
loopback FakeSlack answers the app's Web API calls).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.request import urlopen
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.http_server import HttpServer
from bot.server import wsgi_app
from bot.slack_app import build_app
from kpi.store import open_store
from settings.app import AppConfig, LoadedConfig
from tests.fake_slack import FakeSlack, post_to_bot, slash_command_body

SECRET = "bench-signing-secret"


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_wsgiref(app: Any) -> tuple[int, Callable[[], None]]:
    server = make_server("127.0.0.1", 0, app, server_class=_Threading, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, lambda: (server.shutdown(), server.server_close())


def start_waitress(app: Any) -> tuple[int, Callable[[], None]]:
    server = HttpServer(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, lambda: (server.shutdown(), server.server_close())


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def run(case: Callable[[], None], requests: int, clients: int) -> tuple[list[float], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(lambda _: timed(case), range(requests)))
    return latencies, requests / (time.perf_counter() - started)


def report(name: str, latencies: list[float], rate: float) -> None:
    ms = sorted(latency * 1000 for latency in latencies)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(
        f"{name:<32} p50 {statistics.median(ms):7.1f}  p95 {p95:7.1f}  max {ms[-1]:7.1f} ms"
        f"  {rate:7.1f} req/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N"
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as slack:
        slack.add_user("U1", "ann")
        store = open_store(f"sqlite:///{Path(folder) / 'store.db'}")
        config = LoadedConfig(AppConfig(), None, Path("."), "")
        bolt, _ = build_app(
            store, config, token="xoxb-test", signing_secret=SECRET, api_url=slack.api_url
        )
        app = wsgi_app(bolt, store, "/slack/events")
        for server_name, start in (("wsgiref", start_wsgiref), ("waitress", start_waitress)):
            port, stop = start(app)
            base = f"http://127.0.0.1:{port}"

            def command(base: str = base) -> None:
                body = slash_command_body(text="help", response_url=slack.new_response_url())
                assert post_to_bot(f"{base}/slack/events", body, SECRET).status == 200

            def health(base: str = base) -> None:
                with urlopen(f"{base}/health", timeout=10) as answer:
                    answer.read()

            try:
                for case_name, case in (("command ack", command), ("/health", health)):
                    run(case, 20, 1)  # warm-up
                    for clients in (1, args.clients):
                        latencies, rate = run(case, args.requests, clients)
                        report(f"{server_name} {case_name}, {clients} client(s)", latencies, rate)
            finally:
                stop()
        store.engine.dispose()


if __name__ == "__main__":
    main()
