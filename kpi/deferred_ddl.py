"""SQLite schema objects of a table set aside while a bulk write runs, inside its transaction."""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from sqlalchemy import Connection


@contextmanager
def dropped(
    connection: Connection,
    kind: Literal["index", "trigger"],
    table: str,
    keep: Container[str] = (),
    rolls_back: bool = False,
) -> Iterator[None]:
    """`table`'s indexes (not its primary key's) or triggers, but those named in `keep`,
    dropped while the block runs, then created again from their own SQL. In the caller's
    transaction, so no other connection ever sees them missing (and a rollback brings them
    back). With `rolls_back` (the caller's transaction is sure to roll back when the block
    raises), they are created again only when the block ends normally."""
    _begin(connection)
    listed = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = ? AND tbl_name = ? AND sql IS NOT NULL",
        (kind, table),
    ).all()
    found = [(str(name), str(sql)) for name, sql in listed if name not in keep]
    for name, _sql in found:
        connection.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
    try:
        yield
    except BaseException:
        # (An invalidated connection, as after Ctrl-C in a statement, is closed: its
        # transaction rolls back whole, and no statement may run on it any more.)
        if not rolls_back and not connection.invalidated:
            _create(connection, found)
        raise
    _create(connection, found)


def _create(connection: Connection, found: Sequence[tuple[str, str]]) -> None:
    for _name, sql in found:
        connection.exec_driver_sql(sql)


def _begin(connection: Connection) -> None:
    """Opens the driver's transaction if it has none yet: Python's sqlite3 begins one only
    before an INSERT, UPDATE or DELETE, so a DROP as the first statement would be committed
    at once, and a rollback (or a crash) would leave the table without its indexes."""
    driver: Any = connection.connection.driver_connection
    if not driver.in_transaction:
        connection.exec_driver_sql("BEGIN")
