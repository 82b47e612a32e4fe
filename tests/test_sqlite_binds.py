"""`driver_rows` converts a bulk write's values as SQLAlchemy's own bind processors do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import Boolean, Column, Date, DateTime, Float, MetaData, String, Table
from sqlalchemy.dialects import sqlite

from kpi.sqlite_binds import driver_rows

TABLE = Table(
    "t",
    MetaData(),
    Column("id", String, primary_key=True),
    Column("on", Date),
    Column("at", DateTime),
    Column("flag", Boolean),
    Column("amount", Float),
)
MOMENTS = [
    datetime(2026, 1, 5, 10, 0),
    datetime(999, 12, 31, 23, 59, 59, 999999),
    datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
    datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=2))),
    date(2026, 3, 1),  # a date where a timestamp goes: midnight
    None,
]
DATES = [
    date(2026, 1, 5),
    date(1, 1, 1),
    datetime(2026, 1, 5, 23, 0),
    None,
    date(9999, 12, 31),
    None,
]


def test_driver_rows_are_what_sqlalchemy_binds() -> None:
    rows = [
        {
            "id": str(n),
            "on": on,
            "at": at,
            "flag": n % 3 == 0 if n < 5 else None,
            "amount": n or None,
        }
        for n, (on, at) in enumerate(zip(DATES, MOMENTS, strict=True))
    ]
    compiled = sqlite.insert(TABLE).compile(dialect=sqlite.dialect(), column_keys=list(rows[0]))
    names = compiled.positiontup or []
    processors = compiled._bind_processors
    expected = [
        tuple(processors[name](row[name]) if name in processors else row[name] for name in names)
        for row in rows
    ]
    assert driver_rows(names, processors, rows) == expected
    assert expected[1][names.index("at")] == "0999-12-31 23:59:59.999999"
