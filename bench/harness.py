"""What the connector benchmarks share: a loopback fake served from a spawned child process
(so none of its memory counts), this process's peak memory, a timed source, terminal progress,
and the machine's description."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import shlex
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any


def mix(n: int) -> int:
    """A cheap deterministic hash of an index (Knuth's multiplicative)."""
    return (n * 2654435761) & 0xFFFFFFFF


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB: Linux's VmHWM. Not ru_maxrss, which
    a spawned child inherits from its parent (it survives fork and exec), so a child measured
    after its parent built a 600 MB store would report 600 MB of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class ChildrenMemory:
    """The resident memory of this process's child processes (the files source's reading
    process), sampled every `interval` seconds on a thread while the block runs: the largest
    one child held, and the largest this process and its children held together. A sample
    can miss a peak shorter than the interval; this process's own peak is `peak_mb`."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.child_mb = 0.0
        self.together_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildrenMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            children = [_rss_mb(pid) for pid in _children(os.getpid())]
            self.child_mb = max([self.child_mb, *children])
            self.together_mb = max(self.together_mb, _rss_mb(os.getpid()) + sum(children))


def _children(pid: int) -> list[int]:
    """The process's children and theirs (Linux's /proc), while they live."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return found + [grandchild for child in found for grandchild in _children(child)]


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class FakeProcess:
    """`target(*args, channel)` in a spawned child: it sends one greeting (ports and the like),
    then answers `(command, argument)` messages until told `("stop", None)`."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.channel, child = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child), daemon=True)
        self.greeting: Any = None

    def __enter__(self) -> FakeProcess:
        self.process.start()
        self.greeting = self.channel.recv()
        return self

    def ask(self, command: str, argument: Any = None) -> Any:
        self.channel.send((command, argument))
        return self.channel.recv()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.ask("stop")
        self.process.join(10)


def answer_commands(channel: Connection, handlers: dict[str, Callable[[Any], Any]]) -> None:
    """The child's side: answers each command with its handler until `stop`."""
    while True:
        command, argument = channel.recv()
        handler = handlers.get(command)
        if handler is None:
            channel.send(None)
            return
        channel.send(handler(argument))


class Measured:
    """The source, timed and its peak memory taken when it ends, before `run_sync` refreshes
    the KPI rollups (store work that every source pays)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.name = source.name
        self.seconds = 0.0
        self.peak_mb = 0.0

    def sync(self, store: Any, report: Any, progress: Any, accept_deletes: bool = False) -> None:
        started = time.perf_counter()
        try:
            self.source.sync(store, report, progress, accept_deletes)
        finally:
            self.seconds = time.perf_counter() - started
            self.peak_mb = peak_mb()


class Progress:
    """`object: rows read, rate` on one terminal line."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last: tuple[str, float] = ("", self.started)

    def __call__(self, name: str, rows: int) -> None:
        if name != self.last[0]:
            self.last = (name, time.perf_counter())
        rate = rows / max(time.perf_counter() - self.last[1], 1e-9)
        sys.stderr.write(f"\r\033[K{name}: {rows:,} rows read, {rate:,.0f}/s")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def terminal_progress() -> Progress | None:
    return Progress() if sys.stderr.isatty() else None


def records_read(report: Any) -> int:
    """The rows a sync report counts as read, over every object."""
    return sum(o.new + o.updated + o.unchanged + o.skipped for o in report.objects.values())


def fresh_store(db: str | None, folder: str) -> Any:
    """An empty SQLite store at `db` (replacing what was there), else in `folder`."""
    from kpi.store import open_store

    path = Path(db) if db else Path(folder) / "store.db"
    path.unlink(missing_ok=True)
    return open_store(f"sqlite:///{path}")


def sync_twice(
    store: Any, make_source: Callable[[], Any], fake: FakeProcess, change_share: float
) -> dict[str, Any]:
    """A full `run_sync` of the fake into `store`, then `change_share` of its deals changed
    there and an incremental sync: calls, records, time, memory and rate-limit waits."""
    from connectors.sync import run_sync

    progress = terminal_progress()
    source = Measured(make_source())
    started, cpu = time.perf_counter(), time.process_time()
    report = run_sync(store, source, True, progress)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if progress:
        progress.done()
    read = records_read(report)
    full = {
        "api_calls": report.api_calls,
        "records": read,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),  # this process's, every thread's
        "records_per_second": round(read / wall),
        "throttled_seconds": round(report.throttled_seconds, 1),
        "peak_mb": round(peak_mb(), 1),
        "connector_seconds": round(source.seconds, 1),
        "connector_peak_mb": round(source.peak_mb, 1),
        "stopped_early": report.stopped_early,
        "objects": {name: vars(o) | {"skip_reasons": {}} for name, o in report.objects.items()},
    }
    changed = fake.ask("change", change_share)
    started = time.perf_counter()
    report = run_sync(store, make_source(), False, progress)
    wall = time.perf_counter() - started
    if progress:
        progress.done()
    incremental = {
        "changed": changed,
        "api_calls": report.api_calls,
        "seconds": round(wall, 1),
        "throttled_seconds": round(report.throttled_seconds, 1),
        "updated": {name: o.updated + o.new for name, o in report.objects.items()},
        "stopped_early": report.stopped_early,
        "peak_mb": round(peak_mb(), 1),
    }
    return {"full": full, "incremental": incremental, "store_counts": store.counts()}


def machine(module: str, argv: list[str] | None, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": f"python3 -m {module} " + shlex.join(argv or sys.argv[1:]),
    }
