"""In-memory images of the store, one per kind and store, each tied to the rollups' version.

An image (`kpi.totals_image`, `kpi.stage_image`, `kpi.deal_image`) is a columnar copy of what
every partner's figures for any window read, loaded once per rollups version (`rollups.version`,
bumped by every rebuild, so by every write the triggers mark) and then cut per window with numpy.
The version is read before the rows: a rebuild racing the load leaves the image labelled with the
older version, so the next question sees the version moved and loads again; an image is never
used once the stored version differs. Below `MIN_ROWS` rows a store gets none (its SQL is cheap).
"""

from __future__ import annotations

import ctypes
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Select, Text, cast, func, literal
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

Ints = npt.NDArray[np.int64]
MIN_ROWS = 50_000  # the rows an image needs (the callers' loaders count their own)


class Image(Protocol):
    @property
    def version(self) -> int: ...


ImageT = TypeVar("ImageT", bound=Image)


class _Holder:
    def __init__(self) -> None:
        self.image: Image | None = None
        self.small_at: int | None = None  # the version at which the store was too small
        self.lock = threading.Lock()


_holders: weakref.WeakKeyDictionary[Engine, dict[str, _Holder]] = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def current(
    connection: Connection, version: int, kind: str, load: Callable[[Connection], ImageT | None]
) -> ImageT | None:
    """The store's image of `kind` at `version` (loaded now with `load` if it is older or
    missing), or None when the store is small (`load` gave None), or another thread is loading
    it (the caller then reads the SQL). One image per kind and store, shared by every engine of
    a process."""
    with _holders_lock:
        kinds = _holders.get(connection.engine)
        if kinds is None:
            kinds = _holders[connection.engine] = {}
        holder = kinds.get(kind)
        if holder is None:
            holder = kinds[kind] = _Holder()
    image = holder.image
    if image is not None and image.version == version:
        return image  # type: ignore[return-value]  # `load` made it: an ImageT
    if holder.small_at == version or not holder.lock.acquire(blocking=False):
        return None
    try:
        holder.image = None  # the old image's memory goes before the new one is loaded
        loaded = load(connection)
        release_freed_memory()
        holder.small_at = version if loaded is None else None
        holder.image = loaded
        return loaded if loaded is not None and loaded.version == version else None
    finally:
        holder.lock.release()


def release_freed_memory() -> None:
    """Hands the heap that a load freed back to the system (glibc's `malloc_trim`; nothing
    elsewhere). A load's temporaries are hundreds of MB that glibc would otherwise keep mapped
    (its threshold for mapping large blocks apart rises after the first ones are freed): ~80 MB
    more resident after the three images of the benchmark's store, without it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def lists(
    connection: Connection, values: Sequence[ColumnElement[Any]], order: Any, separator: str = ","
) -> list[Any]:
    """Aggregates listing `values` of a group's rows as texts joined by `separator`, all in one
    order (`order`, a column, on PostgreSQL; SQLite's aggregates of one group see its rows in
    one order): an image reads one row per group, not one per record."""
    if connection.dialect.name == "postgresql":
        in_order = aggregate_order_by(literal(separator), order)
        return [func.string_agg(cast(value, Text), in_order) for value in values]
    return [func.group_concat(value, separator) for value in values]


def integers(texts: Iterable[str]) -> Ints:
    """The integers of comma-separated texts, in order."""
    numbers: Ints = _parsed(texts, np.int64)
    return numbers


def floats(texts: Iterable[str]) -> npt.NDArray[np.float64]:
    """The numbers of comma-separated texts (each a float's exact decimal form), in order."""
    numbers: npt.NDArray[np.float64] = _parsed(texts, np.float64)
    return numbers


def _parsed(texts: Iterable[str], dtype: type[Any]) -> Any:
    joined = ",".join(texts)
    if not joined:
        return np.zeros(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a text not wholly numbers: fail, never cut it short
        return np.fromstring(joined, dtype=dtype, sep=",")


def chunks(connection: Connection, query: Select[Any], size: int) -> Iterator[Sequence[Any]]:
    """The rows of `query` in lists of `size`, from the driver's own cursor (its plain tuples,
    without a Row each: the texts arrive at half the cost)."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()
