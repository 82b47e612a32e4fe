"""A bulk load's commit leaves the copy of SQLite's write-ahead log into the database file to a
thread (`kpi.wal_checkpoint`), which `checkpoints.wait()` joins; the connection's automatic
checkpoint is back afterwards, and a transaction that rolls back starts none."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from kpi.models import Partner
from kpi.store import Store, open_store
from kpi.wal_checkpoint import Checkpoints

JOINED = date(2026, 1, 5)
ROWS = 2_000  # about 4 MB of pages: more than the automatic checkpoint's 1,000 pages


def load(store: Store) -> None:
    partners = [Partner(id=f"p{i}", name="x" * 2_000, joined_on=JOINED) for i in range(ROWS)]
    with store.bulk_transaction() as connection:
        store.upsert(connection, partners, "files")


def test_the_commit_leaves_the_copy_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kpi.db"
    store = open_store(f"sqlite:///{path}")
    before = path.stat().st_size
    started: list[Checkpoints] = []
    real = Checkpoints._start
    monkeypatch.setattr(Checkpoints, "_start", lambda self: started.append(self))
    load(store)
    assert len(started) == 1
    assert path.stat().st_size < before + 1_000_000  # the pages are in the log only
    real(started[0])
    store.checkpoints.wait()
    assert path.stat().st_size > before + ROWS * 2_000  # copied into the database file
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert store.counts()["partners"] == ROWS
    store.engine.dispose()


def test_a_transaction_that_rolls_back_starts_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kpi.db'}")
    started: list[Checkpoints] = []
    monkeypatch.setattr(Checkpoints, "_start", lambda self: started.append(self))
    with pytest.raises(RuntimeError), store.bulk_transaction() as connection:
        store.upsert(connection, [Partner(id="p", name="x", joined_on=JOINED)], "files")
        raise RuntimeError
    assert started == []
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert store.counts()["partners"] == 0
    store.engine.dispose()
