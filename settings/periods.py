"""Reporting periods (spec section 2): half-open date ranges ``[start, end)``.

Accepted forms, case-insensitive with surrounding spaces ignored, relative to an as-of date D:

- ``last-Nd`` for N in 1..3660: ``[D-(N-1), D+1)``;
- ``this-month``, ``this-quarter``, ``this-year``: from the first day of D's unit to ``D+1``;
- ``last-month``, ``last-quarter``, ``last-year``: the whole calendar unit before D's;
- ``2026-Q3``, ``2026-09``, ``2026``: that whole quarter, month or year (never clipped at D);
- ``2026-01-01..2026-03-31``: both dates inclusive; the first must not be after the second;
- what people type, read as one of the above: ``last quarter``, ``this year`` (a space for the
  hyphen), ``last 30 days``, ``ytd`` / ``qtd`` / ``mtd`` (this year, quarter, month), ``Q3 2026``
  and ``2026 Q3``, ``Q3`` alone (the latest third quarter that has begun by D), and a month's
  name with its year, ``Sept 2026`` or ``September 2026`` (a month name alone is not a period, so
  a partner name ending in "May" keeps it).

The previous period of a whole calendar unit (``last-month/quarter/year``, ``YYYY-MM``,
``YYYY-Qn``, ``YYYY``) is the unit before it; of any other period, the range of the same length
that ends where this one starts.

Choices where the spec is silent: ``Period.name`` is normalized (lower case, except the ``Q`` of
``2026-Q3``; ``last-090d`` becomes ``last-90d``; spaces around ``..`` are dropped). Months need
two digits and dates must be ``YYYY-MM-DD``. A previous period is named by a form that parses
back to its range (``2026-10``, ``2025-Q4``, ``2025``, or ``A..B``). A period whose range or
previous range falls outside the years 1..9999 is rejected. ``today_in`` takes a naive ``now``
as UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo

Unit = Literal["month", "quarter", "year"]

DEFAULT_PERIOD = "last-90d"
MAX_LAST_DAYS = 3660

_MONTHS: dict[Unit, int] = {"month": 1, "quarter": 3, "year": 12}
_FORMS = (
    "last-30d, last-90d, last-365d (any last-Nd, or last 30 days), this-month, this-quarter, "
    "this-year (or this year, ytd), last-month, last-quarter, last-year (or last quarter), "
    "2026-Q3 (or Q3 2026, Q3), 2026-09 (or Sept 2026), 2026, or 2026-01-01..2026-03-31"
)
_DATE = r"(\d{4}-\d{2}-\d{2})"
_LAST_DAYS = re.compile(r"last-(\d+)d", re.ASCII)
_RELATIVE = re.compile(r"(this|last)-(month|quarter|year)", re.ASCII)
_QUARTER = re.compile(r"(\d{4})-q(\d)", re.ASCII)
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_YEAR = re.compile(r"(\d{4})", re.ASCII)
_RANGE = re.compile(_DATE + r"\s*\.\.\s*" + _DATE, re.ASCII)
_TO_DATE = {"ytd": "this-year", "qtd": "this-quarter", "mtd": "this-month"}
_SPOKEN_RELATIVE = re.compile(r"(this|last) (month|quarter|year)", re.ASCII)
_SPOKEN_DAYS = re.compile(r"last (\d+) ?(?:d|days?)", re.ASCII)
_BARE_QUARTER = re.compile(r"q([1-4])", re.ASCII)
_QUARTER_YEAR = re.compile(r"q([1-4])[ /-](\d{4})|(\d{4}) q([1-4])", re.ASCII)
_MONTH_YEAR = re.compile(r"([a-z]{3,9})\.? (\d{4})", re.ASCII)
_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip


class PeriodError(ValueError):
    """A text that is not a period; the message names it and lists the accepted forms."""

    def __init__(self, text: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f'"{text}" is not a period{detail}. Use one of: {_FORMS}.')


@dataclass(frozen=True)
class Period:
    """The dates ``start <= day < end``; ``unit`` is set when it is one whole calendar unit."""

    name: str
    start: date
    end: date
    unit: Unit | None = None
    # The date it was named relative to (None: not known); two periods with the same dates are
    # the same period whatever day they were asked on.
    as_of: date | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"period {self.name!r} is empty: {self.start} >= {self.end}")

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _unit_start(unit: Unit, day: date) -> date:
    step = _MONTHS[unit]
    return date(day.year, (day.month - 1) // step * step + 1, 1)


def _unit_name(unit: Unit, start: date) -> str:
    if unit == "year":
        return f"{start.year:04d}"
    if unit == "quarter":
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year:04d}-{start.month:02d}"


def _whole(unit: Unit, start: date, name: str | None = None) -> Period:
    end = _add_months(start, _MONTHS[unit])
    return Period(name or _unit_name(unit, start), start, end, unit)


def _spoken(lowered: str, as_of: date) -> str:
    """What people type (``last quarter``, ``Q3 2026``, ``Sept 2026``, ``ytd``) in the
    canonical form; any other text unchanged."""
    text = " ".join(lowered.split())
    if text in _TO_DATE:
        return _TO_DATE[text]
    if m := _SPOKEN_RELATIVE.fullmatch(text):
        return f"{m[1]}-{m[2]}"
    if m := _SPOKEN_DAYS.fullmatch(text):
        return f"last-{m[1]}d"
    if m := _BARE_QUARTER.fullmatch(text):
        quarter = int(m[1])
        year = as_of.year if as_of.month >= quarter * 3 - 2 else as_of.year - 1
        return f"{year}-q{quarter}"
    if m := _QUARTER_YEAR.fullmatch(text):
        return f"{m[2] or m[3]}-q{m[1] or m[4]}"
    if m := _MONTH_YEAR.fullmatch(text):
        word = "sep" if m[1] == "sept" else m[1]
        months = [i for i, name in enumerate(_MONTH_NAMES, 1) if name.startswith(word)]
        if len(months) == 1:  # a name or its unique start: jan, sept, august
            return f"{m[2]}-{months[0]:02d}"
    return text


def _parse(text: str, as_of: date) -> Period:
    lowered, tomorrow = _spoken(text.lower(), as_of), as_of + timedelta(days=1)
    if m := _LAST_DAYS.fullmatch(lowered):
        n = int(m[1])
        if not 1 <= n <= MAX_LAST_DAYS:
            raise PeriodError(text, f"N in last-Nd must be from 1 to {MAX_LAST_DAYS}")
        return Period(f"last-{n}d", tomorrow - timedelta(days=n), tomorrow)
    if m := _RELATIVE.fullmatch(lowered):
        unit = cast(Unit, m[2])
        current = _unit_start(unit, as_of)
        if m[1] == "this":
            return Period(lowered, current, tomorrow)
        return _whole(unit, _add_months(current, -_MONTHS[unit]), lowered)
    if m := _QUARTER.fullmatch(lowered):
        if not 1 <= int(m[2]) <= 4:
            raise PeriodError(text)
        return _whole("quarter", date(int(m[1]), int(m[2]) * 3 - 2, 1))
    if m := _MONTH.fullmatch(lowered):
        return _whole("month", date(int(m[1]), int(m[2]), 1))
    if m := _YEAR.fullmatch(lowered):
        return _whole("year", date(int(m[1]), 1, 1))
    if m := _RANGE.fullmatch(lowered):
        first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        if first > last:
            raise PeriodError(text, "its first date is after its last")
        return Period(f"{first}..{last}", first, last + timedelta(days=1))
    raise PeriodError(text)


def parse_period(text: str, as_of: date) -> Period:
    """The period ``text`` names as of ``as_of`` (today in the deployment's timezone)."""
    text = text.strip()
    try:
        period = _parse(text, as_of)
        previous_period(period)  # so that every parsed period has a previous one
    except PeriodError:
        raise
    except (ValueError, OverflowError):  # an impossible date, or one beyond 1..9999
        raise PeriodError(text) from None
    return replace(period, as_of=as_of)


def previous_period(period: Period) -> Period:
    """The calendar unit before a whole unit; else the same-length range ending at its start."""
    if period.unit is not None:
        return _whole(period.unit, _add_months(period.start, -_MONTHS[period.unit]))
    start = period.start - timedelta(days=period.days)
    return Period(f"{start}..{period.start - timedelta(days=1)}", start, period.start)


def today_in(tz: ZoneInfo | str, now: datetime | None = None) -> date:
    """Today's date in ``tz``; ``now`` (default: the current time) is taken as UTC if naive."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    if now is None:
        return datetime.now(zone).date()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(zone).date()
