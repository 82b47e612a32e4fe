"""Runs one sync of the configured source into the store and keeps its report there."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from connectors.errors import SourceError
from connectors.files import FilesSource
from connectors.guard import DeletionRefused
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.secondary import SecondaryFiles
from kpi import rollups
from kpi.store import Store
from settings.app import LoadedConfig

#: The status of a sync run whose sweep the deletion guard refused.
REFUSED = "refused"

#: Called as rows stream in: (object name, rows read so far for it).
Progress = Callable[[str, int], None]


class Source(Protocol):
    name: str

    def sync(
        self,
        store: Store,
        report: SyncReport,
        progress: Progress | None,
        accept_deletes: bool = False,
    ) -> None:
        """Brings the source's records into the store, filling in `report` as it goes.

        A full snapshot's sweep goes through the deletion guard (`connectors.guard`), which
        `accept_deletes` overrides; a refused sweep raises DeletionRefused."""


def source_for(config: LoadedConfig) -> Source:
    """The source app.yaml names, built with its settings; a CRM source with the reader of
    `secondary_files` when app.yaml names that folder."""
    app = config.app
    if app.source == "files":
        return FilesSource(
            config.files_path, Normalizer(app), app.files.encoding, app.sync.max_delete_share
        )
    if app.source == "salesforce":
        from connectors.salesforce import SalesforceSource  # the SDK loads only when used

        customers = app.salesforce.customers is not None
        secondary = SecondaryFiles.for_crm(config.secondary_files, app, customers)
        return SalesforceSource(app, Normalizer(app), secondary=secondary)
    if app.source == "hubspot":
        from connectors.hubspot import HubSpotSource  # the SDK loads only when used

        customers = app.hubspot.customers is not None
        secondary = SecondaryFiles.for_crm(config.secondary_files, app, customers)
        return HubSpotSource(app, Normalizer(app), secondary=secondary)
    raise SourceError(
        f"source: {app.source} is not available in this version of partner-kpi; "
        "use source: files with CSV exports for now."
    )


def run_sync(
    store: Store,
    source: Source,
    full: bool = False,
    progress: Progress | None = None,
    accept_deletes: bool = False,
) -> SyncReport:
    """Syncs and records the run (ok, stopped, refused or failed) with its report in the store.

    Scheduled syncs never pass `accept_deletes`: a refused sweep waits for a person."""
    report = SyncReport(source=source.name, full=full)
    run_id = store.start_sync(source.name, full)
    started = time.monotonic()
    try:
        source.sync(store, report, progress, accept_deletes)
        # Now rather than at the first question after the sync: the KPI rollups of what changed.
        rollups.refresh(store.engine)
    except DeletionRefused as refusal:
        rollups.refresh(store.engine)  # a CRM's pages read before the sweep are committed
        report.seconds = time.monotonic() - started
        store.finish_sync(run_id, REFUSED, report.to_json(), error=str(refusal))
        raise
    except BaseException as error:
        report.seconds = time.monotonic() - started
        store.finish_sync(run_id, "failed", report.to_json(), error=str(error) or repr(error))
        raise
    finally:
        store.checkpoints.wait()  # a bulk load's copy into the database file, made meanwhile
    report.seconds = time.monotonic() - started
    store.finish_sync(run_id, "stopped" if report.stopped_early else "ok", report.to_json())
    return report
