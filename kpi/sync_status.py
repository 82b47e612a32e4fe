"""Whether the last sync left the numbers behind the source: failed, refused by the deletion
guard, or stopped early. Digests and scorecards say so beside the numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kpi.store import Store

#: The outcomes of a sync run that leave the store behind the source, as a sentence says them.
BEHIND = {"failed": "failed", "refused": "was refused", "stopped": "stopped early"}
REASON_CHARS = 200


@dataclass(frozen=True)
class SyncProblem:
    verb: str  # "failed", "was refused", "stopped early"
    reason: str  # the run's error, first line, shortened
    finished_at: datetime

    def __str__(self) -> str:
        return f"The last sync {self.verb} ({self.reason})"


def last_sync_problem(store: Store) -> SyncProblem | None:
    """The last finished sync, when it left the store behind the source."""
    last = store.last_sync(status=None)
    if last is None or last.finished_at is None or last.status not in BEHIND:
        return None
    text = last.error or last.report.get("stopped_early") or "no reason given"
    lines = str(text).strip().splitlines() or ["no reason given"]
    reason = lines[0] if len(lines[0]) <= REASON_CHARS else lines[0][: REASON_CHARS - 1] + "…"
    return SyncProblem(BEHIND[last.status], reason, last.finished_at)
