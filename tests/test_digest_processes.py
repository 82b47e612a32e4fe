"""Digests across real OS processes: two scheduler replicas in two processes sharing one
database (a SQLite file, and PostgreSQL when PARTNER_KPI_TEST_DATABASE_URL names one) post each
run exactly once to one loopback Slack; and `partner-kpi serve` catches a due digest up at start,
posts it once, and stops cleanly on SIGTERM, after which a restart posts nothing again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from kpi.store import open_store
from tests.fake_slack import FakeSlack
from tests.test_scheduler import CHANNEL, MONDAY_CEST, MONDAY_CET, seed

ROOT = Path(__file__).resolve().parent.parent
REPLICA = Path(__file__).resolve().parent / "digest_replica.py"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(wall_clock_ts=True) as server:
        yield server


def test_two_processes_on_one_database_post_each_run_exactly_once(
    database_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    store = open_store(database_url)
    try:
        seed(store)
    finally:
        store.engine.dispose()
    # Three rounds: a run on time, a run caught up late within the grace time, and a re-tick
    # of that same run an hour later.
    nows = [
        MONDAY_CEST + timedelta(minutes=1),
        MONDAY_CET + timedelta(hours=5),
        MONDAY_CET + timedelta(hours=6),
    ]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPLICA),
                database_url,
                fake.api_url,
                str(barrier),
                str(index),
                "2",
                *(now.isoformat() for now in nows),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    results: list[dict[str, Any]] = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.extend(json.loads(line) for line in out.splitlines())
    elapsed = time.monotonic() - started

    rounds: dict[int, list[str]] = {}
    for result in results:
        (outcome,) = result["outcomes"]
        rounds.setdefault(result["round"], []).append(outcome["action"])
    assert sorted(rounds[0]) in (["claimed-elsewhere", "sent"], ["already-sent", "sent"])
    assert sorted(rounds[1]) in (["claimed-elsewhere", "sent"], ["already-sent", "sent"])
    assert rounds[2] == ["already-sent", "already-sent"]

    posts = fake.calls_to("chat.postMessage")
    assert len(posts) == 2 and len(fake.messages_in(CHANNEL)) == 2
    keys = [m["metadata"]["event_payload"]["key"] for m in fake.messages_in(CHANNEL)]
    assert keys == [
        f"digest:weekly:{CHANNEL}:2026-10-12..2026-10-19",
        f"digest:weekly:{CHANNEL}:2026-10-19..2026-10-26",
    ]
    store = open_store(database_url, migrate=False)
    try:
        for message, key in zip(fake.messages_in(CHANNEL), keys, strict=True):
            state = store.claim_state(key)
            assert state is not None and state["slack_ts"] == message["ts"]
    finally:
        store.engine.dispose()
    assert elapsed < 30, f"two replica processes took {elapsed:.1f}s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serving:
    """A `partner-kpi serve` process, its stderr (the log) read line by line as it comes."""

    def __init__(
        self,
        config: Path,
        fake: FakeSlack,
        port: int,
        env: dict[str, str | None] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.process = serve_process(config, fake, port, env, options)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for_log(self, text: str, timeout: float = 30, times: int = 1) -> str:
        """The `times`-th line of the log holding `text`, once it is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if len(found) >= times:
                return found[times - 1]
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"serve never logged {text!r}:\n{''.join(self.lines)}")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as `docker stop` sends; the exit status and the whole log."""
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"serve did not stop on SIGTERM:\n{''.join(self.lines)}") from None
        self._reader.join(timeout=5)
        return status, "".join(self.lines)


def serve_process(
    config: Path,
    fake: FakeSlack,
    port: int,
    extra: dict[str, str | None] | None = None,
    options: Sequence[str] = (),
) -> subprocess.Popen[str]:
    """`partner-kpi serve` in HTTP mode, or as `extra` changes its environment (None: unset),
    with serve's `options` added."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": fake.api_url,
    }
    env.pop("SLACK_APP_TOKEN", None)  # HTTP mode
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from bot.cli import main; main()",
            "--config",
            str(config),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *options,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


TICKS = "digest catch-up"  # the scheduler's job that looks for due digests


def wait_healthy(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            with urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("partner-kpi serve never answered /health")


def test_serve_posts_a_due_digest_once_and_stops_cleanly(fake: FakeSlack, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        seed(store)
    finally:
        store.engine.dispose()
    # A daily digest whose time was two minutes ago: missed, but well within the grace time,
    # so the scheduler's catch-up tick at start posts it.
    due = datetime.now(UTC) - timedelta(minutes=2)
    config = tmp_path / "app.yaml"
    config.write_text(
        "database_url: sqlite:///store.db\n"
        "digests:\n"
        f"  - {{name: daily, channel: {CHANNEL}, schedule: '{due.minute} {due.hour} * * *',"
        " timezone: UTC, period: last-7d}\n"
        "scheduler: {sync: {schedule: null, before_digest_minutes: 0}, tick_seconds: 1}\n"
    )
    port = free_port()
    started = time.monotonic()
    serving = Serving(config, fake, port)
    try:
        wait_healthy(port, serving.process)
        fake.wait_for(lambda: fake.messages_in(CHANNEL), timeout=30, description="the digest")
        posted_after = time.monotonic() - started
        serving.wait_for_log("digest daily at start: sent")
        # another tick of the scheduler after it: time for a duplicate, were there one
        ticked = f'Job "{TICKS} '  # APScheduler's line when the job has run
        serving.wait_for_log(ticked, times=sum(ticked in line for line in serving.lines) + 1)
    finally:
        status, log = serving.stop()
    assert status == 0, log
    assert "scheduler started" in log and "scheduler stopped" in log
    assert "Traceback" not in log
    digest, chart = fake.messages_in(CHANNEL)  # the digest, and its chart in the thread
    assert digest["text"].startswith("Partner digest · daily")
    assert digest["metadata"]["event_type"] == "partner_kpi_digest"
    assert chart["files"][0]["name"] == "digest-daily.png"
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert posted_after < 30

    # A restart finds the run in the send log and posts nothing.
    serving = Serving(config, fake, port)
    try:
        wait_healthy(port, serving.process)
        serving.wait_for_log("digest daily at start: already-sent")
    finally:
        status, log = serving.stop()
    assert status == 0, log
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert len(fake.messages_in(CHANNEL)) == 2
