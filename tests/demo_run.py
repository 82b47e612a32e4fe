"""`partner-kpi demo`, run once per test run as a newcomer runs it, and shared by every test
(and every pytest-xdist worker) that needs its folder or its output.

The first caller runs the installed command under a file lock in the run's shared temporary
folder; the others wait for it and reuse what it left. Tests that write take a copy.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO_AS_OF = "2026-11-22"
_OUTPUT = "demo-stdout.txt"  # beside the folder, so a copy holds only what the demo wrote


@dataclass(frozen=True)
class DemoRun:
    folder: Path  # where the demo ran: demo-data/ and partner_kpi.db, no app.yaml
    stdout: str

    def copy_to(self, destination: Path) -> Path:
        """A private copy of the folder, for tests that write into it."""
        shutil.copytree(self.folder, destination)
        return destination


def shared_demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo's one run of this test run (started here if no worker has started it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above every worker's own
    folder = root / "demo-run"
    output = root / _OUTPUT
    with _locked(root / "demo-run.lock"):
        if not output.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a run that failed half-way
            folder.mkdir()
            output.write_text(_run_demo(folder), encoding="utf-8")
    return DemoRun(folder, output.read_text(encoding="utf-8"))


def _run_demo(folder: Path) -> str:
    script = Path(sys.executable).parent / "partner-kpi"
    assert script.exists(), "install the package first: pip install -e '.[dev]'"
    env = {k: v for k, v in os.environ.items() if k != "PARTNER_KPI_CONFIG"}
    done = subprocess.run(
        [str(script), "demo", "--as-of", DEMO_AS_OF],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
