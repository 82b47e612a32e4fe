"""Trends that add up: a trend is the difference of the values as they read, so a reader who
subtracts the shown numbers gets the shown trend; a sales cycle reads faster or slower."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.formatting import as_of, format_change, format_value


@pytest.mark.parametrize(
    ("key", "current", "previous", "expected"),
    [
        ("sales_cycle_days", 50.4, 55.6, "▼ 6 days faster"),  # 50 days vs 56 days
        ("sales_cycle_days", 50.4, 50.2, "= no change"),  # never "-0 days"
        ("sales_cycle_days", 41.0, 38.0, "▲ 3 days slower"),
        ("close_rate", 0.616, 0.724, "▼ -10 pts"),  # 62% vs 72%, not -11
        ("close_rate", 0.624, 0.617, "= no change"),  # 62% vs 62%, not +1
        ("won_revenue", 100.4, 50.6, "▲ +$49"),  # $100 vs $51
        ("partner_nps", 8.4, 28.0, "▼ -20"),  # +8 vs +28, not -19.6
        ("quality_score", 87.84, 87.76, "= no change"),  # 87.8 vs 87.8
        ("customer_satisfaction", 4.24, 4.36, "▼ -0.2"),  # 4.2/5 vs 4.4/5
        ("deal_count", 15, 16, "▼ -1"),
        ("won_revenue", 10.0, None, ""),
    ],
)
def test_trends_are_worked_out_from_the_shown_values(
    key: str, current: float, previous: float | None, expected: str
) -> None:
    assert format_change(key, current, previous) == expected


NUMBER = re.compile(r"-?[\d,]+(?:\.\d+)?")


def number_in(text: str) -> float:
    found = NUMBER.search(text.replace("$", ""))
    assert found is not None, text
    return float(found[0].replace(",", ""))


@pytest.mark.parametrize(
    ("key", "scale"),
    [
        ("won_revenue", 5000.0),
        ("close_rate", 1.0),
        ("sales_cycle_days", 90.0),
        ("partner_nps", 100.0),
        ("quality_score", 100.0),
        ("customer_satisfaction", 5.0),
    ],
)
def test_a_reader_subtracting_the_shown_values_gets_the_shown_trend(key: str, scale: float) -> None:
    draw = random.Random(key)
    for _ in range(500):
        current, previous = draw.random() * scale, draw.random() * scale
        before, after = format_value(key, previous), format_value(key, current)
        shown_change = number_in(after) - number_in(before)
        trend = format_change(key, current, previous)
        if round(shown_change, 6) == 0:
            assert trend == "= no change"
            continue
        magnitude = abs(number_in(trend.split(" ", 1)[1]))
        assert magnitude == pytest.approx(abs(shown_change)), (current, previous, trend)
        assert trend.startswith("▲" if shown_change > 0 else "▼")


def test_data_as_of_reads_as_a_time_and_an_age() -> None:
    synced = "2026-12-02T21:37:12.610139+01:00"
    now = datetime(2026, 12, 2, 20, 45, 30, tzinfo=UTC)
    assert as_of(synced, now) == "2026-12-02 20:37 UTC (8 minutes ago)"
    assert as_of(now - timedelta(days=3), now) == "2026-11-29 20:45 UTC (3 days ago)"
    assert as_of(None).startswith("never")
