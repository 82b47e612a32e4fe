"""CRM faults that must end a sync promptly and clearly: a server that accepts the connection
and never answers (connect and read timeouts); and the HubSpot limiter's safety margin. (The
daily-limit 429 and a stopped sync's exit status are in tests/test_hubspot.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from connectors.errors import SourceError
from connectors.hubspot import HubSpotSource
from connectors.hubspot.limiter import RateLimiter
from connectors.incremental import RetryPolicy
from connectors.normalize import Normalizer
from connectors.salesforce import SalesforceSource
from connectors.sync import run_sync
from kpi.store import Store
from settings.app import AppConfig
from tests.fake_hubspot import TOKEN

TIMEOUTS = {"connect_timeout_seconds": 0.3, "read_timeout_seconds": 0.3}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose server accepts every connection, reads nothing and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_salesforce_that_never_answers_fails_within_its_timeouts(
    silent_server: int, store: Store
) -> None:
    app = AppConfig.model_validate(
        {
            "source": "salesforce",
            "salesforce": {
                "auth": "token",
                "instance_url": f"https://127.0.0.1:{silent_server}",
                **TIMEOUTS,
            },
        }
    )
    source = SalesforceSource(
        app,
        Normalizer(app),
        env={"SALESFORCE_ACCESS_TOKEN": "00Dxx!token"},
        retry=RetryPolicy(attempts=2, sleep=lambda _: None),
    )
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        run_sync(store, source)
    assert time.monotonic() - started < 5
    assert str(error.value) == (
        "Salesforce did not answer within salesforce.connect_timeout_seconds (0.3 s) and "
        "read_timeout_seconds (0.3 s) in 2 attempts; the next sync resumes where this one "
        "stopped."
    )
    assert source.api is not None and source.api.budget.calls == 2  # unanswered, counted
    run = store.last_sync(status=None)
    assert run is not None and run.status == "failed"


def test_a_hubspot_that_never_answers_fails_within_its_timeouts(
    silent_server: int, store: Store
) -> None:
    app = AppConfig.model_validate(
        {
            "source": "hubspot",
            "hubspot": {"base_url": f"http://127.0.0.1:{silent_server}", **TIMEOUTS},
        }
    )
    source = HubSpotSource(
        app,
        Normalizer(app),
        env={"HUBSPOT_ACCESS_TOKEN": TOKEN},
        retry=RetryPolicy(attempts=2, sleep=lambda _: None),
        limiter=RateLimiter(10**6, 10**6),
    )
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        run_sync(store, source)
    assert time.monotonic() - started < 5
    assert str(error.value) == (
        "HubSpot did not answer within hubspot.connect_timeout_seconds (0.3 s) and "
        "read_timeout_seconds (0.3 s) in 2 attempts; the next sync resumes where this one "
        "stopped."
    )


def test_the_hubspot_limiter_keeps_a_safety_margin_below_the_limits() -> None:
    now = [0.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(100, 5, clock=lambda: now[0], sleep=advance)
    sent: list[tuple[float, bool]] = []
    for n in range(400):
        search = n % 10 == 0
        limiter.acquire(search)
        sent.append((now[0], search))
        now[0] += 0.001  # the calls themselves take a moment
    times = [t for t, _ in sent]
    searches = [t for t, search in sent if search]
    # HubSpot's 100 per 10 s and 5 searches per second, with calls arriving up to 0.25 s
    # closer together than they left: never more than 90 and 4 in any such window
    assert max(sum(1 for u in times if t <= u < t + 10.25) for t in times) == 90
    assert max(sum(1 for u in searches if t <= u < t + 1.25) for t in searches) <= 4
    burst = RateLimiter(100, 5, clock=lambda: now[0], sleep=advance)
    started = now[0]
    for _ in range(5):
        burst.acquire(search=True)
    assert now[0] - started == pytest.approx(1.25)  # the fifth search waited for the window
