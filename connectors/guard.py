"""The deletion guard: a sync never deletes a large share of a table unless asked to.

A source's sweep deletes the stored rows it no longer delivers. An export cut short, a file of
junk or a permission change that hides records looks the same as mass deletions, so a sweep
that would delete more than `sync.max_delete_share` of a table's stored rows (or all of them)
is refused; `partner-kpi sync --accept-deletes` lets it through. Deletions a CRM reports
explicitly (getDeleted, archived) are not sweeps and are never held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpi.store import Sweep

ACCEPT_FLAG = "partner-kpi sync --accept-deletes"
#: What a CRM's refused sweep kept: its pages, committed as they were read, stay.
SWEEP_REFUSED = "none of them were deleted (the records it read were updated)"


class DeletionRefused(Exception):
    """A sweep would delete too much; the message is one sentence naming the tables and rows."""

    def __init__(self, refusals: list[Sweep], max_share: float, outcome: str) -> None:
        self.refusals = refusals
        counts = " and ".join(
            f"{len(s.gone):,} of the {s.stored:,} stored {s.table.replace('_', ' ')}"
            for s in refusals
        )
        super().__init__(
            f"the sync would delete {counts}, more than sync.max_delete_share "
            f"({max_share:.0%}) allows, so {outcome}; check the source, and if those rows "
            f"really left it, run `{ACCEPT_FLAG}`."
        )


@dataclass
class DeleteGuard:
    """Decides each sweep of one sync run and remembers the ones it refused."""

    max_share: float = 0.2
    accept: bool = False
    refused: list[Sweep] = field(default_factory=list)

    def allows(self, sweep: Sweep) -> bool:
        """True when the sweep may delete; otherwise it is recorded as refused."""
        deleting = len(sweep.gone)
        if self.accept or deleting == 0:
            return True
        if deleting < sweep.stored and deleting <= self.max_share * sweep.stored:
            return True
        self.refused.append(sweep)
        return False

    def raise_if_refused(self, outcome: str) -> None:
        """Raises DeletionRefused naming every refused sweep; `outcome` says what was kept."""
        if self.refused:
            raise DeletionRefused(self.refused, self.max_share, outcome)
