"""The last-resort handler: an error nobody anticipated is one sentence on the terminal, and
its full traceback goes to a file the sentence names, for a bug report."""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from templates import word

CRASH_DIR_ENV = "PARTNER_KPI_CRASH_DIR"  # where tracebacks go (default: the temp folder)


def last_resort(error: BaseException) -> str:
    """Writes the traceback to a new file; returns the sentence that names it."""
    folder = Path(os.environ.get(CRASH_DIR_ENV) or tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"partner-kpi-error-{stamp}-{os.getpid()}.txt"
    lines = str(error).strip().splitlines()
    summary = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    except OSError as unwritable:
        return word(
            "faults.crash_unwritten", summary=summary, path=path, reason=unwritable.strerror
        )
    return word("faults.crash", summary=summary, path=path)
