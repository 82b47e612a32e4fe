"""Socket Mode clients against a loopback Socket Mode server (tests/fake_socket_mode.py), on the
cases a real network brings: Slack's routine refresh (whether the new connection opened
before the old one closed, too), a close without a close frame, a TCP reset
and a connection that goes silent. Run by hand:

    python3 -m bench.socket_mode [--cases refresh,eof,reset,blackhole] [--clients ...]

For each client and case it prints the seconds until a new connection said hello (or the ack
latency of a command sent the moment the new connection said hello, for `refresh`) and the CPU
seconds this process spent meanwhile (the fake's threads block and cost next to nothing).
slack_sdk's clients run with ping_interval=10, as Bolt's adapters start them; the aiohttp and
websockets ones need `pip install aiohttp` and an asyncio app. Needs the dev dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.socket_mode.response import SocketModeResponse

from tests.fake_slack import DEFAULT_APP_TOKEN, FakeSlack, slash_command_body
from tests.fake_socket_mode import FakeSocketMode

CASES = ("refresh", "eof", "reset", "blackhole")
CLIENTS = ("builtin", "websocket_client", "aiohttp", "websockets", "partner-kpi")
GIVE_UP = 60.0
PING_INTERVAL = 10.0

Stop = Callable[[], None]


def _ack_sync(client: Any, request: Any) -> None:
    client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))


async def _ack_async(client: Any, request: Any) -> None:
    await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))


def start_sync(kind: str, api_url: str) -> Stop:
    if kind == "builtin":
        from slack_sdk.socket_mode.builtin import SocketModeClient
    else:
        from slack_sdk.socket_mode.websocket_client import (  # type: ignore[assignment]
            SocketModeClient,
        )
    client = SocketModeClient(
        DEFAULT_APP_TOKEN, web_client=WebClient(base_url=api_url), ping_interval=PING_INTERVAL
    )
    client.socket_mode_request_listeners.append(_ack_sync)
    client.connect()
    return client.close  # type: ignore[no-any-return]


def start_async(kind: str, api_url: str) -> Stop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def make() -> Any:
        from slack_sdk.web.async_client import AsyncWebClient

        if kind == "aiohttp":
            from slack_sdk.socket_mode.aiohttp import SocketModeClient
        else:
            from slack_sdk.socket_mode.websockets import (  # type: ignore[assignment]
                SocketModeClient,
            )
        client = SocketModeClient(
            DEFAULT_APP_TOKEN,
            web_client=AsyncWebClient(base_url=api_url),
            ping_interval=PING_INTERVAL,
        )
        client.socket_mode_request_listeners.append(_ack_async)
        await client.connect()
        return client

    client = asyncio.run_coroutine_threadsafe(make(), loop).result(30)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(client.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return stop


def start_ours(api_url: str) -> Stop:
    from slack_bolt import App

    from bot.socket_health import SocketHealth
    from bot.socket_mode import SocketModeRunner

    app = App(
        signing_secret="",
        client=WebClient(token="xoxb-test", base_url=api_url),
        token_verification_enabled=False,
    )
    runner = SocketModeRunner(app, DEFAULT_APP_TOKEN, SocketHealth(), api_url=api_url)
    runner.start()
    threading.Thread(target=runner.run, daemon=True).start()
    return lambda: runner.close(drain_seconds=2)


def start(kind: str, api_url: str) -> Stop:
    if kind in ("builtin", "websocket_client"):
        return start_sync(kind, api_url)
    if kind in ("aiohttp", "websockets"):
        return start_async(kind, api_url)
    return start_ours(api_url)


def measure(kind: str, case: str) -> str:
    with FakeSlack() as slack, FakeSocketMode(slack) as socket:
        stop = start(kind, slack.api_url)
        try:
            old = socket.wait_for_link()
            time.sleep(0.5)
            cpu, started = time.process_time(), time.monotonic()
            if case == "refresh":
                socket.disconnect("refresh_requested")
                socket.wait_for_link(2, timeout=GIVE_UP)
                overlap = "new before old closed" if old.open else "old closed first"
                envelope_id = socket.send(slash_command_body(text="help"))
                ack = socket.wait_for_ack(envelope_id, timeout=GIVE_UP)
                spent = time.process_time() - cpu
                return f"ack {ack.latency:.2f}s, cpu {spent:.2f}s, {overlap}"
            socket.drop(case)  # type: ignore[arg-type]
            socket.wait_for_link(2, timeout=GIVE_UP)
            waited = time.monotonic() - started
            return f"back {waited:.1f}s, cpu {time.process_time() - cpu:.2f}s"
        except TimeoutError:
            spent = time.process_time() - cpu
            return f"not within {GIVE_UP:.0f}s, cpu {spent:.2f}s"
        finally:
            stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    for kind in args.clients.split(","):
        for case in args.cases.split(","):
            print(f"{kind:17} {case:10} {measure(kind, case)}", flush=True)


if __name__ == "__main__":
    main()
