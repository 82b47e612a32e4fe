"""Comparing KPI cards: key by key, floats to a relative 1e-9 (sums over rows in another order
differ in the last bits), everything else exactly."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import pytest

from kpi.engine import KpiEngine
from settings.periods import parse_period

REL = 1e-9
PERIODS = ("last-365d", "2025", "last-quarter")


def assert_same_partner_kpis(
    engine: KpiEngine, wanted: KpiEngine, partner_ids: Iterable[str], as_of: date
) -> None:
    """Every partner's card from `engine` equals the one from `wanted`, over a few periods
    (all but `data_as_of`)."""
    for partner_id in partner_ids:
        for period in PERIODS:
            want = wanted.partner(partner_id, parse_period(period, as_of))
            got = engine.partner(partner_id, parse_period(period, as_of))
            want.pop("data_as_of")
            got.pop("data_as_of")
            assert_same(got, want, f"{period} {partner_id}")


def assert_same(actual: Any, expected: Any, where: str) -> None:
    """`actual` equals `expected` key by key; floats to a relative 1e-9, types exactly."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        assert len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same(got, want, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert type(actual) is float, f"{where}: {actual!r} is not a float (want {expected!r})"
        assert actual == pytest.approx(expected, rel=REL, abs=1e-9), f"{where}"
    else:  # None, int, str
        assert type(actual) is type(expected) and actual == expected, (
            f"{where}: {actual!r} != {expected!r}"
        )
