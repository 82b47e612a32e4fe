"""SQLite's checkpoint of a bulk load's write-ahead log, run beside the work that follows it.

In WAL mode a commit that leaves more than `wal_autocheckpoint` pages (4 MB) in the log copies
them into the database file before it returns. After a bulk load that copy is the whole load
written a second time: 2.8 GB and about 12 s at a million deals, during which the sync does
nothing else. `Checkpoints.after_commit` turns the commit's copy off for one transaction and
makes it on a thread of its own once the transaction has committed, beside the rollups' rebuild
that comes next; `wait` joins it. A checkpoint is SQLite's own housekeeping and safe to run
beside readers and writers: a copy cut short (or never made) leaves the log, and so the data,
whole, and the next checkpoint finishes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("partner_kpi.store")


class Checkpoints:
    """The checkpoints a store runs on threads of their own, so they can be waited for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._running: list[threading.Thread] = []
        self._lock = threading.Lock()

    @contextmanager
    def after_commit(self, connection: Connection) -> Iterator[None]:
        """Around a transaction on `connection` (begun inside the block): its commit copies
        nothing into the database file, a thread does once it has committed. On other
        databases than SQLite, nothing changes."""
        if connection.dialect.name != "sqlite":
            yield
            return
        driver: Any = connection.connection.driver_connection
        pages = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        driver.execute("PRAGMA wal_autocheckpoint=0")  # a pragma: no transaction begins
        try:
            yield
        finally:
            if not connection.invalidated:  # (else closed: its pragmas went with it)
                driver.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
        self._start()

    def wait(self) -> None:
        """Returns once every checkpoint started so far has ended."""
        with self._lock:
            running, self._running = self._running, []
        for thread in running:
            thread.join()

    def _start(self) -> None:
        thread = threading.Thread(target=self._checkpoint, name="wal-checkpoint")
        with self._lock:
            self._running = [t for t in self._running if t.is_alive()] + [thread]
        thread.start()

    def _checkpoint(self) -> None:
        # PASSIVE: copies what no reader still needs, never waits for a lock nor holds one a
        # writer needs. A failure only leaves the copy to the next commit's checkpoint.
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except DBAPIError as error:
            log.warning("a background checkpoint of the store failed: %s", error.orig)
