"""The files bench's changed copy (bench/files_bench.changed_copy): one record of deals.csv and
one of stage_changes.csv differ, every other byte is the folder's, and a sync of the copy after
the folder's writes just those rows (the rest skipped by their digests)."""

from __future__ import annotations

from pathlib import Path

from bench.files_bench import changed_copy
from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi.store import Store
from settings.app import AppConfig
from tests.csv_folder import minimal_folder


def test_the_changed_copy_changes_one_row_of_deals_and_of_stage_changes(
    store: Store, tmp_path: Path
) -> None:
    folder = minimal_folder(tmp_path / "folder")
    copy = changed_copy(folder, tmp_path / "changed")
    for name in ("partners.csv", "deals.csv", "stage_changes.csv"):
        old = (folder / name).read_text().splitlines()
        new = (copy / name).read_text().splitlines()
        differing = [at for at, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert differing == ([] if name == "partners.csv" else [1]), name
    app = AppConfig(currency="USD", currency_rates={"EUR": 1.5})
    run_sync(store, FilesSource(folder, Normalizer(app)))
    report = run_sync(store, FilesSource(copy, Normalizer(app), max_delete_share=1.0))
    written = {
        name: (o.new, o.updated, o.deleted)
        for name, o in report.objects.items()
        if o.new or o.updated or o.deleted
    }
    assert written == {"deals": (0, 1, 0), "stage_changes": (1, 0, 1)}
