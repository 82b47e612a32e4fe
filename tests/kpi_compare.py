"""Comparing KPI cards: key by key, floats to a relative 1e-9 (sums over rows in another order
differ in the last bits), everything else exactly."""

from __future__ import annotations

from typing import Any

import pytest

REL = 1e-9


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
