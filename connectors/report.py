"""The report of one sync: what changed per object, what was skipped and why, what was odd."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kpi.store import UpsertCounts


@dataclass
class ObjectReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)

    def count(self, counts: UpsertCounts) -> None:
        self.new += counts.new
        self.updated += counts.updated
        self.unchanged += counts.unchanged

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] += 1


@dataclass
class SyncReport:
    source: str
    full: bool
    objects: dict[str, ObjectReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # every skipped row, with where it was
    warnings: list[str] = field(default_factory=list)
    api_calls: int = 0
    # Seconds the source's client-side rate limiting made the sync wait (0 without one).
    throttled_seconds: float = 0.0
    seconds: float = 0.0
    stopped_early: str | None = None  # why a sync stopped before the end, keeping its watermark

    def object(self, name: str) -> ObjectReport:
        return self.objects.setdefault(name, ObjectReport())

    def to_json(self) -> dict[str, Any]:
        """The form kept in the store (sync_runs.report)."""
        return {
            "source": self.source,
            "full": self.full,
            "objects": {
                name: {
                    "new": o.new,
                    "updated": o.updated,
                    "unchanged": o.unchanged,
                    "deleted": o.deleted,
                    "skipped": o.skipped,
                    "skip_reasons": dict(o.skip_reasons),
                }
                for name, o in self.objects.items()
            },
            "problems": self.problems[:1000],
            "problem_count": len(self.problems),
            "warnings": self.warnings,
            "api_calls": self.api_calls,
            "throttled_seconds": round(self.throttled_seconds, 3),
            "seconds": round(self.seconds, 3),
            "stopped_early": self.stopped_early,
        }
