"""The demo data as CSV files, generated once per test run (the repository does not ship them)."""

from __future__ import annotations

import functools
import tempfile
from datetime import date
from pathlib import Path

from connectors.demo_data import write_demo_data

DEMO_AS_OF = date(2026, 11, 22)


@functools.cache
def demo_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="partner-kpi-demo-")) / "demo-data"
    write_demo_data(folder, DEMO_AS_OF)
    return folder
