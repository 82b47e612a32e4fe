"""A CRM source's secondary folder (app.yaml `secondary_files`): the records a CRM does not hold.

Trainings come from an LMS export and survey answers from a survey tool, never from Salesforce
or HubSpot, so a CRM deployment names a folder of CSV files in the files source's format beside
its CRM; the CRM's sync reads it at its end (`finish_crm_sync`), with the files source's own
reading code (`FilesSource` restricted to SECONDARY_FILES, each optional), as a snapshot of those
files under the source `files`. Customers and tickets come from the folder only when the CRM
does not sync them (`salesforce.customers: null` / `hubspot.customers: null`): two copies of one
customer would count twice.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from connectors.errors import SourceError
from connectors.files import FilesSource, Progress
from connectors.guard import DeleteGuard, DeletionRefused
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from kpi.store import Store
from settings.app import AppConfig

#: The files a CRM's secondary folder may hold, in the order they are read; a file the files
#: source does not know (yet) is simply not read.
SECONDARY_FILES: tuple[str, ...] = (
    "trainings.csv",
    "survey_responses.csv",
    "customers.csv",
    "tickets.csv",
    "goals.csv",
)
#: The files a CRM that syncs customers holds itself.
CUSTOMER_FILES: tuple[str, ...] = ("customers.csv", "tickets.csv")
#: The prefix of the secondary files' entries in the CRM sync's report (`files:trainings`).
REPORT_PREFIX = "files:"


class SecondaryFiles:
    """Reads the secondary folder into the store; the CRM's sync calls `load` at its end."""

    def __init__(self, folder: Path, app: AppConfig, crm_holds: Collection[str] = ()) -> None:
        self.folder = folder
        self.crm_holds = tuple(crm_holds)
        self.wanted = tuple(name for name in SECONDARY_FILES if name not in self.crm_holds)
        self.files = FilesSource(
            folder, Normalizer(app), app.files.encoding, app.sync.max_delete_share, self.wanted
        )

    @classmethod
    def for_crm(
        cls, folder: Path | None, app: AppConfig, syncs_customers: bool
    ) -> SecondaryFiles | None:
        """The folder's reader, or None when app.yaml names no secondary folder."""
        if folder is None:
            return None
        return cls(folder, app, CUSTOMER_FILES if syncs_customers else ())

    def load(
        self, store: Store, report: SyncReport, guard: DeleteGuard, progress: Progress | None
    ) -> None:
        """Loads the folder's files (one transaction), their figures in `report` under
        `files:<kind>`; a sweep the deletion guard refuses changes nothing of the folder's and
        joins `guard`'s refusals (the CRM's sync raises them all at its end)."""
        if not self.folder.is_dir():
            raise SourceError(
                f"{self.folder}: no such folder; set secondary_files in app.yaml to the folder "
                "of your trainings.csv and survey_responses.csv exports."
            )
        for name in self.crm_holds:
            if (self.folder / name).exists():
                report.warnings.append(
                    f"{self.folder / name} was not read: the CRM syncs customers and tickets "
                    "(set customers: null in its section of app.yaml to take them from the file)"
                )
        part = SyncReport(source=self.files.name, full=report.full)
        own = DeleteGuard(self.files.max_delete_share, guard.accept)
        try:
            self.files.load(store, part, own, progress)
        except DeletionRefused:
            guard.refused.extend(own.refused)
        for kind, figures in part.objects.items():
            report.objects[REPORT_PREFIX + kind] = figures
        report.problems.extend(part.problems)
        report.warnings.extend(part.warnings)
        report.warnings.extend(self.files.normalizer.warnings())
