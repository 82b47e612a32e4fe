"""How many hypothesis examples a property test tries: its full count with `--slow` (the
README's test command), a few otherwise, so the default suite still checks every property."""

from __future__ import annotations

#: Set by tests/conftest.py from `--slow` before any test module is imported.
FULL = False
QUICK_SHARE = 8  # without --slow, a property test tries 1/8 of its examples (at least 3)


def examples(full: int) -> int:
    return full if FULL else max(3, full // QUICK_SHARE)
