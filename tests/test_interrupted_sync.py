"""Ctrl-C in the middle of a sync's statement: the sync stops at once with KeyboardInterrupt
(the CLI's "Aborted."), records the failed run, and the store holds what it held. Before, the
interrupted statement kept SQLite's write lock on a connection SQLAlchemy had closed, so
recording the failed run waited out the whole busy timeout, then failed; and the cleanup that
restores a table's triggers or a pragma ran on that connection and failed in its turn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi import rollups
from kpi import store as store_module
from kpi.store import open_store
from tests.csv_folder import minimal_folder
from tests.test_files_bulk import APP

LOCK_TIMEOUT = 3.0


class Interrupted(list[Any]):
    """Rows whose reading is interrupted (as by Ctrl-C) after the first: the driver's
    executemany has begun its statement."""

    def __iter__(self) -> Iterator[Any]:
        items = super().__iter__()
        yield next(items)
        raise KeyboardInterrupt


#: A column each table's rows name, and no other table's written before them.
NAMED = {"deals": "amount", "stage_changes": "entered_at"}


@pytest.mark.parametrize("table", sorted(NAMED))
def test_ctrl_c_in_a_statement_stops_the_sync_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    folder = minimal_folder(tmp_path / "folder")
    store = open_store(f"sqlite:///{tmp_path / 'kpi.db'}", lock_timeout=LOCK_TIMEOUT)
    real = store_module.driver_rows

    def interrupted(names: Any, processors: Any, rows: Any) -> list[Any]:
        found = real(names, processors, rows)
        return Interrupted(found) if NAMED[table] in names else found

    monkeypatch.setattr(store_module, "driver_rows", interrupted)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_sync(store, FilesSource(folder, Normalizer(APP), parallel=False))
    assert time.monotonic() - started < LOCK_TIMEOUT
    monkeypatch.undo()
    run = store.last_sync(status=None)
    assert run is not None
    assert (run.status, run.error) == ("failed", "KeyboardInterrupt()")
    assert store.counts()["deals"] == store.counts()["stage_changes"] == 0
    report = run_sync(store, FilesSource(folder, Normalizer(APP)))  # the triggers are whole
    assert report.objects["deals"].new == 3
    store.engine.dispose()


def test_ctrl_c_in_the_rollups_rebuild_stops_the_sync_at_once(tmp_path: Path) -> None:
    """The load is committed; the rollups' rebuild is interrupted in a statement (and rolled
    back: the next question rebuilds them)."""
    folder = minimal_folder(tmp_path / "folder")
    store = open_store(f"sqlite:///{tmp_path / 'kpi.db'}", lock_timeout=LOCK_TIMEOUT)

    def interrupt(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO kpi_partner_days"):
            raise KeyboardInterrupt

    event.listen(store.engine, "before_cursor_execute", interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_sync(store, FilesSource(folder, Normalizer(APP)))
    assert time.monotonic() - started < LOCK_TIMEOUT
    event.remove(store.engine, "before_cursor_execute", interrupt)
    run = store.last_sync(status=None)
    assert run is not None
    assert run.status == "failed"
    assert store.counts()["deals"] == 3
    assert rollups.refresh(store.engine) is not None  # the marks are still there
    store.engine.dispose()
