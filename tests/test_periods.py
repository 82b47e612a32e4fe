"""Periods (spec section 2), with expected dates worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from settings.periods import (
    DEFAULT_PERIOD,
    Period,
    PeriodError,
    parse_period,
    previous_period,
    today_in,
)

D = date(2026, 11, 22)
FORMS = (
    "Use one of: last-30d, last-90d, last-365d (any last-Nd, or last 30 days), this-month, "
    "this-quarter, this-year (or this year, ytd), last-month, last-quarter, last-year (or last "
    "quarter), 2026-Q3 (or Q3 2026, Q3), 2026-09 (or Sept 2026), 2026, or 2026-01-01..2026-03-31."
)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "as_of", "start", "end", "prev_start", "prev_end"),
    [
        # last-Nd: [D-(N-1), D+1), previous = same length before
        ("last-30d", "2026-11-22", "2026-10-24", "2026-11-23", "2026-09-24", "2026-10-24"),
        ("last-90d", "2026-11-22", "2026-08-25", "2026-11-23", "2026-05-27", "2026-08-25"),
        ("last-365d", "2026-11-22", "2025-11-23", "2026-11-23", "2024-11-23", "2025-11-23"),
        ("last-1d", "2026-11-22", "2026-11-22", "2026-11-23", "2026-11-21", "2026-11-22"),
        # 2024 is a leap year: 365 days before 2025-01-01 is 2024-01-02
        ("last-365d", "2024-12-31", "2024-01-02", "2025-01-01", "2023-01-02", "2024-01-02"),
        ("last-7d", "2024-03-02", "2024-02-25", "2024-03-03", "2024-02-18", "2024-02-25"),
        # this-*: from the unit's first day to D+1, previous = same length before
        ("this-month", "2026-11-22", "2026-11-01", "2026-11-23", "2026-10-10", "2026-11-01"),
        ("this-quarter", "2026-11-22", "2026-10-01", "2026-11-23", "2026-08-09", "2026-10-01"),
        ("this-year", "2026-11-22", "2026-01-01", "2026-11-23", "2025-02-09", "2026-01-01"),
        ("this-month", "2024-03-01", "2024-03-01", "2024-03-02", "2024-02-29", "2024-03-01"),
        ("this-year", "2026-01-01", "2026-01-01", "2026-01-02", "2025-12-31", "2026-01-01"),
        ("this-quarter", "2026-03-31", "2026-01-01", "2026-04-01", "2025-10-03", "2026-01-01"),
        # last-*: the whole unit before D's, previous = the unit before that
        ("last-month", "2026-11-22", "2026-10-01", "2026-11-01", "2026-09-01", "2026-10-01"),
        ("last-month", "2026-01-15", "2025-12-01", "2026-01-01", "2025-11-01", "2025-12-01"),
        ("last-month", "2024-03-10", "2024-02-01", "2024-03-01", "2024-01-01", "2024-02-01"),
        ("last-quarter", "2026-11-22", "2026-07-01", "2026-10-01", "2026-04-01", "2026-07-01"),
        ("last-quarter", "2026-02-10", "2025-10-01", "2026-01-01", "2025-07-01", "2025-10-01"),
        ("last-year", "2026-11-22", "2025-01-01", "2026-01-01", "2024-01-01", "2025-01-01"),
        # named calendar units, never clipped at D
        ("2026-Q3", "2026-11-22", "2026-07-01", "2026-10-01", "2026-04-01", "2026-07-01"),
        ("2026-Q4", "2026-11-22", "2026-10-01", "2027-01-01", "2026-07-01", "2026-10-01"),
        ("2026-Q1", "2026-11-22", "2026-01-01", "2026-04-01", "2025-10-01", "2026-01-01"),
        ("2026-09", "2026-11-22", "2026-09-01", "2026-10-01", "2026-08-01", "2026-09-01"),
        ("2026-01", "2026-11-22", "2026-01-01", "2026-02-01", "2025-12-01", "2026-01-01"),
        ("2024-02", "2026-11-22", "2024-02-01", "2024-03-01", "2024-01-01", "2024-02-01"),
        ("2024-03", "2026-11-22", "2024-03-01", "2024-04-01", "2024-02-01", "2024-03-01"),
        ("2026-12", "2026-11-22", "2026-12-01", "2027-01-01", "2026-11-01", "2026-12-01"),
        ("2026", "2026-11-22", "2026-01-01", "2027-01-01", "2025-01-01", "2026-01-01"),
        ("2025", "2026-11-22", "2025-01-01", "2026-01-01", "2024-01-01", "2025-01-01"),
        # A..B, both inclusive, previous = same length before
        (
            "2026-01-01..2026-03-31",
            "2026-11-22",
            "2026-01-01",
            "2026-04-01",
            "2025-10-03",
            "2026-01-01",
        ),
        (
            "2026-05-05..2026-05-05",
            "2026-11-22",
            "2026-05-05",
            "2026-05-06",
            "2026-05-04",
            "2026-05-05",
        ),
        (
            "2024-02-28..2024-03-01",
            "2026-11-22",
            "2024-02-28",
            "2024-03-02",
            "2024-02-25",
            "2024-02-28",
        ),
        (
            "2026-12-01..2027-02-15",
            "2026-11-22",
            "2026-12-01",
            "2027-02-16",
            "2026-09-15",
            "2026-12-01",
        ),
    ],
)
def test_parse_and_previous(
    text: str, as_of: str, start: str, end: str, prev_start: str, prev_end: str
) -> None:
    period = parse_period(text, d(as_of))
    assert (period.name, period.start, period.end) == (text, d(start), d(end))
    previous = previous_period(period)
    assert (previous.start, previous.end) == (d(prev_start), d(prev_end))
    if period.unit is None:
        assert previous.days == period.days


def test_days_and_units() -> None:
    assert parse_period("2024-02", D).days == 29
    assert parse_period("2023-02", D).days == 28
    assert parse_period("2024", D).days == 366
    assert parse_period("last-90d", D).days == 90
    assert parse_period("this-month", D).days == 22
    assert parse_period("last-year", D).unit == "year"
    assert parse_period("2026-Q3", D).unit == "quarter"
    assert parse_period("2026-09", D).unit == "month"
    for text in ("last-30d", "this-month", "this-quarter", "this-year", "2026-01-01..2026-01-31"):
        assert parse_period(text, D).unit is None


def test_previous_names_parse_back_to_the_same_range() -> None:
    assert previous_period(parse_period("2026-Q1", D)).name == "2025-Q4"
    assert previous_period(parse_period("last-month", d("2026-01-15"))).name == "2025-11"
    assert previous_period(parse_period("2026", D)).name == "2025"
    assert previous_period(parse_period("this-month", D)).name == "2026-10-10..2026-10-31"
    texts = ("2026-Q1", "2026-01", "2026", "last-90d", "this-quarter", "2026-01-01..2026-03-31")
    for text in texts:
        previous = previous_period(parse_period(text, D))
        again = parse_period(previous.name, D)
        assert (again.start, again.end) == (previous.start, previous.end)
    # chained previous of a calendar unit keeps walking back by units
    assert previous_period(previous_period(parse_period("2024-03", D))) == parse_period(
        "2024-01", D
    )


def test_normalized_case_and_spaces() -> None:
    assert parse_period("  LAST-90D ", D) == parse_period("last-90d", D)
    assert parse_period("This-Month", D).name == "this-month"
    assert parse_period("2026-q3", D).name == "2026-Q3"
    assert parse_period("last-090d", D).name == "last-90d"
    spaced = parse_period(" 2026-01-01 .. 2026-03-31 ", D)
    assert spaced.name == "2026-01-01..2026-03-31"
    assert spaced.end == d("2026-04-01")


def test_last_nd_bounds() -> None:
    assert parse_period("last-3660d", D).days == 3660
    assert parse_period("last-1d", D).days == 1
    with pytest.raises(PeriodError, match="from 1 to 3660"):
        parse_period("last-3661d", D)


def test_default_period() -> None:
    assert DEFAULT_PERIOD == "last-90d"
    period = parse_period(DEFAULT_PERIOD, D)
    assert (period.start, period.end) == (d("2026-08-25"), d("2026-11-23"))


def test_contains() -> None:
    period = parse_period("2026-09", D)
    assert period.contains(d("2026-09-01"))
    assert period.contains(d("2026-09-30"))
    assert not period.contains(d("2026-10-01"))
    assert not period.contains(d("2026-08-31"))


def test_empty_period_is_refused() -> None:
    with pytest.raises(ValueError):
        Period("x", d("2026-01-02"), d("2026-01-02"))


def test_error_message() -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period("2026-Q5", D)
    assert str(caught.value) == f'"2026-Q5" is not a period. {FORMS}'
    with pytest.raises(PeriodError) as caught:
        parse_period(" 2026-03-31..2026-01-01 ", D)
    assert str(caught.value) == (
        f'"2026-03-31..2026-01-01" is not a period: its first date is after its last. {FORMS}'
    )


@pytest.mark.parametrize(
    ("text", "as_of", "name", "start", "end"),
    [
        ("last quarter", "2026-11-22", "last-quarter", "2026-07-01", "2026-10-01"),
        ("  This   Year ", "2026-11-22", "this-year", "2026-01-01", "2026-11-23"),
        ("ytd", "2026-11-22", "this-year", "2026-01-01", "2026-11-23"),
        ("QTD", "2026-11-22", "this-quarter", "2026-10-01", "2026-11-23"),
        ("mtd", "2026-11-22", "this-month", "2026-11-01", "2026-11-23"),
        ("last month", "2026-01-15", "last-month", "2025-12-01", "2026-01-01"),
        ("last 30 days", "2026-11-22", "last-30d", "2026-10-24", "2026-11-23"),
        ("last 7d", "2026-11-22", "last-7d", "2026-11-16", "2026-11-23"),
        ("Q3 2026", "2026-11-22", "2026-Q3", "2026-07-01", "2026-10-01"),
        ("q1-2025", "2026-11-22", "2025-Q1", "2025-01-01", "2025-04-01"),
        ("2026 Q2", "2026-11-22", "2026-Q2", "2026-04-01", "2026-07-01"),
        ("Q3", "2026-11-22", "2026-Q3", "2026-07-01", "2026-10-01"),  # this year's: begun
        ("Q4", "2026-11-22", "2026-Q4", "2026-10-01", "2027-01-01"),  # the quarter under way
        ("Q3", "2026-02-10", "2025-Q3", "2025-07-01", "2025-10-01"),  # not begun: last year's
        ("Sept 2026", "2026-11-22", "2026-09", "2026-09-01", "2026-10-01"),
        ("sep. 2026", "2026-11-22", "2026-09", "2026-09-01", "2026-10-01"),
        ("September 2026", "2026-11-22", "2026-09", "2026-09-01", "2026-10-01"),
        ("Feb 2024", "2026-11-22", "2024-02", "2024-02-01", "2024-03-01"),
        ("may 2026", "2026-11-22", "2026-05", "2026-05-01", "2026-06-01"),
    ],
)
def test_what_people_type(text: str, as_of: str, name: str, start: str, end: str) -> None:
    period = parse_period(text, d(as_of))
    assert (period.name, period.start, period.end) == (name, d(start), d(end))


@pytest.mark.parametrize("text", ["Sept", "ju 2026", "Q5 2026", "last fortnight", "next quarter"])
def test_what_people_type_that_is_no_period(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text, D)


@pytest.mark.parametrize(
    "text",
    [
        "2026-Q5",
        "2026-Q0",
        "2026-13",
        "2026-00",
        "2026-9",
        "last-0d",
        "last--5d",
        "last-d",
        "last-3661d",
        "last-week",
        "next-month",
        "yesterday",
        "",
        "   ",
        "26",
        "0000",
        "9999",  # its end would be past the last representable date
        "0001",  # it has no previous year
        "2026-03-31..2026-01-01",
        "2026-02-30",
        "2026-02-30..2026-03-01",
        "2023-02-29..2023-03-01",
        "2026-01-01..",
        "2026-01-01...2026-01-31",
        "20260101..20260131",
        "2026-01-01 2026-01-31",
    ],
)
def test_invalid_periods(text: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period(text, D)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message.startswith(f'"{text.strip()}" is not a period')
    assert message.endswith(FORMS)


def test_today_in_timezone_where_utc_date_differs() -> None:
    late_utc = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 2026-11-22 19:00 in Los Angeles
    assert today_in("UTC", late_utc) == d("2026-11-23")
    assert today_in("America/Los_Angeles", late_utc) == d("2026-11-22")
    assert today_in(ZoneInfo("America/Los_Angeles"), late_utc) == d("2026-11-22")
    evening_utc = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # 2026-11-23 05:00 in Tokyo
    assert today_in("Asia/Tokyo", evening_utc) == d("2026-11-23")
    # a naive "now" is UTC
    assert today_in("Asia/Tokyo", datetime(2026, 11, 22, 20, 0)) == d("2026-11-23")
    # an aware "now" in another zone is converted
    berlin = datetime(2026, 1, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert today_in("UTC", berlin) == d("2025-12-31")


def test_today_in_defaults_to_now() -> None:
    before = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    today = today_in("Pacific/Kiritimati")
    after = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    assert before <= today <= after
