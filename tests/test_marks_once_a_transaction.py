"""On PostgreSQL the customers' version and a partner's rollup mark move once a transaction that
writes, however many statements or rows it writes (migration 0015: a bump a statement or row
made a driver's executemany quadratic); on both databases they move with every such
transaction, so neither an in-memory copy (`kpi.customer_image`) nor a rollup is taken for the
stored one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from kpi import schema
from kpi.migrate import downgrade, upgrade
from kpi.store import open_store


def version(connection: Connection) -> int:
    return int(connection.execute(select(schema.kpi_customers_version.c.version)).scalar_one())


def tickets(connection: Connection, first: int, count: int) -> None:
    """`count` tickets, one statement each (as a driver's executemany runs them)."""
    for n in range(first, first + count):
        row = {"id": f"t{n}", "customer_id": "c1", "opened_at": datetime(2026, 1, 5), "source": "x"}
        connection.execute(insert(schema.support_tickets).values(**row, row_hash="h"))


def test_each_writing_transaction_moves_the_version(database_url: str) -> None:
    store = open_store(database_url)
    once = store.engine.dialect.name == "postgresql"
    with store.transaction() as connection:
        start = version(connection)
        tickets(connection, 0, 5)
        assert version(connection) == start + (1 if once else 5)
    with store.transaction() as connection:
        tickets(connection, 5, 3)
        assert version(connection) == start + (2 if once else 8)
    with store.transaction() as connection:  # a transaction that writes none
        connection.execute(select(schema.support_tickets.c.id))
    with store.engine.connect() as connection:
        assert version(connection) == start + (2 if once else 8)
    store.engine.dispose()


def test_migration_0015_down_bumps_a_statement_again(database_url: str) -> None:
    store = open_store(database_url)
    downgrade(store.engine, "0014")
    with store.transaction() as connection:
        start = version(connection)
        tickets(connection, 0, 4)
        assert version(connection) == start + 4
    upgrade(store.engine)
    store.engine.dispose()


def mark(connection: Connection, key: str) -> int:
    marks = schema.kpi_dirty_partners
    query = select(marks.c.version).where(marks.c.partner_key == key)
    return int(connection.execute(query).scalar_one())


def deals(connection: Connection, first: int, count: int) -> None:
    """`count` deals of partner p1, one statement each."""
    for n in range(first, first + count):
        row = {"id": f"d{n}", "partner_id": "p1", "name": "x", "status": "open", "channel": "other"}
        row |= {"created_on": datetime(2026, 1, 5).date(), "registered": False, "source": "x"}
        connection.execute(insert(schema.deals).values(**row, row_hash="h"))


def test_each_writing_transaction_marks_a_partner_once_more(database_url: str) -> None:
    store = open_store(database_url)
    once = store.engine.dialect.name == "postgresql"
    with store.transaction() as connection:
        deals(connection, 0, 4)
        start = mark(connection, "p1")
    with store.transaction() as connection:
        deals(connection, 4, 3)
        assert mark(connection, "p1") == start + (1 if once else 3)
    with store.engine.connect() as connection:
        assert mark(connection, "p1") == start + (1 if once else 3)
    store.engine.dispose()
