"""A batch of CSV rows read column by column, for the files source's bulk path.

Each accessor converts one column of the batch in a tight loop with the same functions the row
builders of `connectors.files` use (`date.fromisoformat`, `Decimal`, `int`, an enum's values),
returning the values as the store keeps them (`kpi.store.RecordKind.values`: floats for
decimals, naive UTC for timestamps, an enum's value). A cell it cannot read, or reads in a way
a builder might not, marks its row in `bad` and gives None; such a row is read again by its
builder, which says why it is unreadable (or reads it), so its messages are the builder's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

_date = date.fromisoformat
_timestamp = datetime.fromisoformat


def naive_utc(text: str) -> datetime | None:
    """An ISO 8601 moment as naive UTC (one without an offset is UTC), or None when the text
    is none."""
    try:
        moment = _timestamp(text)
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


class Columns:
    """The cells of a batch of rows (each with the header's number of cells), by column."""

    def __init__(self, index: dict[str, int], rows: Sequence[Sequence[str]]) -> None:
        self.size = len(rows)
        self._index = index
        self._columns: list[tuple[str, ...]] = list(zip(*rows, strict=True)) if rows else []
        self.bad: set[int] = set()  # rows a check could not read: their builder reads them

    def text(self, name: str) -> list[str | None]:
        """Stripped cells, None where empty (or where the file has no such column)."""
        at = self._index.get(name)
        if at is None or not self.size:
            return [None] * self.size
        return [cell.strip() or None for cell in self._columns[at]]

    def required(self, name: str) -> list[str | None]:
        values = self.text(name)
        self._mark(values)
        return values

    def date(self, name: str, required: bool = False) -> list[date | None]:
        texts = self.required(name) if required else self.text(name)
        try:
            return [None if text is None else _date(text) for text in texts]
        except ValueError:
            return self._each(texts, _date)

    def timestamp(self, name: str) -> list[datetime | None]:
        """Required timestamps as naive UTC (a cell without an offset is UTC)."""
        texts = self.required(name)
        try:
            moments = [None if text is None else _timestamp(text) for text in texts]
        except ValueError:
            moments = self._each(texts, _timestamp)
        return [
            moment.astimezone(UTC).replace(tzinfo=None)
            if moment is not None and moment.tzinfo is not None
            else moment
            for moment in moments
        ]

    def decimal(self, name: str) -> list[Decimal | None]:
        texts = self.text(name)
        try:
            numbers = [None if text is None else Decimal(text) for text in texts]
        except InvalidOperation:
            numbers = self._each(texts, Decimal, InvalidOperation)
        for row, number in enumerate(numbers):
            if number is not None and not number.is_finite():
                self.bad.add(row)
        return numbers

    def integer(self, name: str, low: int, high: int) -> list[int | None]:
        texts = self.text(name)
        numbers = self._each(texts, int)
        for row, number in enumerate(numbers):
            if number is not None and not low <= number <= high:
                self.bad.add(row)
        return numbers

    def boolean(self, name: str) -> list[bool]:
        flags = []
        for row, text in enumerate(self.text(name)):
            value = (text or "false").lower()
            if value not in ("true", "false"):
                self.bad.add(row)
            flags.append(value == "true")
        return flags

    def choice(self, name: str, enum: type[StrEnum], required: bool = False) -> list[str | None]:
        """An enum's values (matched in any case), None where empty."""
        allowed = {member.value for member in enum}
        texts = self.required(name) if required else self.text(name)
        values = []
        for row, text in enumerate(texts):
            value = None if text is None else text.lower()
            if value is not None and value not in allowed:
                self.bad.add(row)
            values.append(value)
        return values

    def _mark(self, values: Sequence[object]) -> None:
        self.bad.update(row for row, value in enumerate(values) if value is None)

    def _each(
        self,
        texts: Sequence[str | None],
        convert: Any,
        error: type[Exception] = ValueError,
    ) -> list[Any]:
        """`convert` of each non-empty cell, one at a time; a cell it refuses marks its row."""
        values: list[Any] = []
        for row, text in enumerate(texts):
            if text is None:
                values.append(None)
                continue
            try:
                values.append(convert(text))
            except error:
                self.bad.add(row)
                values.append(None)
        return values
