"""Rows as the SQLite driver takes them, converted a column at a time.

SQLAlchemy converts each bound value by its type's bind processor, a Python call per value
(dates and timestamps become text, booleans integers). For the millions of values of a bulk
write, `driver_rows` does the same in one pass per column, with the C methods that give the
very same text (`date.isoformat`, `datetime.isoformat(" ", "microseconds")`, SQLAlchemy's
default storage formats) where a value is of the plain type, and the type's own processor for
anything else; a column whose processor does not give that text keeps its processor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any

Process = Callable[[Any], Any]
_SAMPLE_DATE = date(2001, 2, 3)
_SAMPLE_MOMENT = datetime(2001, 2, 3, 4, 5, 6, 7)


def _dates(values: Sequence[Any], process: Process) -> list[Any]:
    return [
        None if value is None else value.isoformat() if type(value) is date else process(value)
        for value in values
    ]


def _moments(values: Sequence[Any], process: Process) -> list[Any]:
    return [
        None
        if value is None
        else value.isoformat(" ", "microseconds")
        if type(value) is datetime and value.tzinfo is None
        else process(value)
        for value in values
    ]


def _plain(values: Sequence[Any], process: Process) -> list[Any]:
    return [process(value) for value in values]


def _column(process: Process) -> Callable[[Sequence[Any], Process], list[Any]]:
    """How a column with this bind processor is converted: by a C method where the processor
    gives that method's text for a sample, else by the processor."""
    try:
        if process(_SAMPLE_MOMENT) == _SAMPLE_MOMENT.isoformat(" ", "microseconds"):
            return _moments
        if process(_SAMPLE_DATE) == _SAMPLE_DATE.isoformat():
            return _dates
    except (TypeError, ValueError, AttributeError):
        pass
    return _plain


def driver_rows(
    names: Sequence[str], processors: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row's values of `names`, in order, converted by `processors` (by name) as
    SQLAlchemy would bind them."""
    if not names:
        return [() for _ in rows]
    if len(names) == 1:
        picked: list[tuple[Any, ...]] = [(row[names[0]],) for row in rows]
    else:
        picked = list(map(itemgetter(*names), rows))
    converted = [
        (at, processors[name]) for at, name in enumerate(names) if callable(processors.get(name))
    ]
    if not converted:
        return picked
    columns: list[Sequence[Any]] = list(zip(*picked, strict=True))
    for at, process in converted:
        columns[at] = _column(process)(columns[at], process)
    return list(zip(*columns, strict=True))
