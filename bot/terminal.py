"""Plain-text output for the command line: aligned tables and the sync report."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from connectors.report import SyncReport

MAX_PROBLEMS_SHOWN = 20


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int]) -> str:
    """Columns padded to their widest cell; the columns in `numeric` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(line(row) for row in cells)


def sync_report(report: SyncReport) -> str:
    kind = "full sync" if report.full else "sync"
    lines = [f"{report.source} {kind} finished in {report.seconds:.1f} s"]
    if report.stopped_early:
        lines[0] = f"{report.source} {kind} stopped early: {report.stopped_early}"
    rows = [
        (name, o.new, o.updated, o.unchanged, o.deleted, o.skipped)
        for name, o in report.objects.items()
    ]
    headers = ("object", "new", "updated", "unchanged", "deleted", "skipped")
    lines += ["", table(headers, rows, numeric={1, 2, 3, 4, 5})]
    if report.api_calls:
        lines.append(f"API calls: {report.api_calls}")
    reasons = [
        f"  {name}: {count} × {reason}"
        for name, o in report.objects.items()
        for reason, count in o.skip_reasons.most_common()
    ]
    if reasons:
        lines += ["", "Skipped, by reason:", *reasons]
    if report.problems:
        lines += ["", "Rows that could not be read (skipped; the rest loaded):"]
        lines += [f"  {problem}" for problem in report.problems[:MAX_PROBLEMS_SHOWN]]
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"  … and {len(report.problems) - MAX_PROBLEMS_SHOWN} more")
    if report.warnings:
        lines += ["", "Warnings:", *(f"  {warning}" for warning in report.warnings)]
    return "\n".join(lines)


class LineProgress:
    """A one-line progress indicator on a terminal; silent when output is not a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.active = stream.isatty()
        self.shown = False

    def __call__(self, name: str, rows: int) -> None:
        if self.active:
            self.stream.write(f"\r\033[K{name}: {rows:,} rows read")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
