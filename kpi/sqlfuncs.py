"""Date arithmetic that SQLite and PostgreSQL spell differently, as portable SQL expressions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Float, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class days_between(FunctionElement[int]):
    """Whole days from the first date to the second (negative when the second is earlier)."""

    type = Integer()
    inherit_cache = True


class elapsed_days(FunctionElement[float]):
    """Days, with fractions, from the first timestamp to the second."""

    type = Float()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(julianday({second}) - julianday({first}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _days_between_postgresql(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({second} - {first})"


@compiles(elapsed_days, "sqlite")
def _elapsed_days_sqlite(element: elapsed_days, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(julianday({second}) - julianday({first}))"


@compiles(elapsed_days, "postgresql")
def _elapsed_days_postgresql(element: elapsed_days, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({second} - {first})) / 86400.0)"


class hour_floor(FunctionElement[Any]):
    """A timestamp truncated to its hour, in the dialect's own storage form (SQLite keeps
    timestamps as text in SQLAlchemy's format, so the result compares with bound values)."""

    type = DateTime()
    inherit_cache = True


@compiles(hour_floor, "sqlite")
def _hour_floor_sqlite(element: hour_floor, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"strftime('%Y-%m-%d %H:00:00.000000', {value})"


@compiles(hour_floor, "postgresql")
def _hour_floor_postgresql(element: hour_floor, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"date_trunc('hour', {value})"


class add_days(FunctionElement[Any]):
    """`add_days(day, literal_column("90"))`: the date that many whole days later (earlier when
    negative). The count is a literal column, so it is part of the statement's cache key."""

    type = Date()
    inherit_cache = True


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    value, days = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"date({value}, ({days}) || ' days')"


@compiles(add_days, "postgresql")
def _add_days_postgresql(element: add_days, compiler: Any, **kw: Any) -> str:
    value, days = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({value} + ({days}))"


class epoch_micros(FunctionElement[int]):
    """A timestamp as whole microseconds since 1970-01-01 (an integer, exactly: SQLite's text
    form's seconds and up to six digits of fraction, PostgreSQL's epoch as numeric)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_micros, "sqlite")
def _epoch_micros_sqlite(element: epoch_micros, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    fraction = f"substr(substr({value}, 21) || '000000', 1, 6)"
    return f"(CAST(strftime('%s', {value}) AS INTEGER) * 1000000 + CAST({fraction} AS INTEGER))"


@compiles(epoch_micros, "postgresql")
def _epoch_micros_postgresql(element: epoch_micros, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(round(EXTRACT(EPOCH FROM {value}) * 1000000) AS BIGINT)"
