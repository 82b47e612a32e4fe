"""The files source's id set (kpi.read_keys.ReadKeys) answers as a set of the keys added."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi import read_keys as seen
from kpi.read_keys import ReadKeys
from tests.budget import examples

KEYS = st.text(alphabet="abc|", max_size=4)


@settings(max_examples=examples(200), deadline=None)
@given(batches=st.lists(st.lists(KEYS, max_size=6), max_size=12), asked=st.lists(KEYS))
def test_read_keys_is_the_set_of_the_keys_added(batches: list[list[str]], asked: list[str]) -> None:
    keys = ReadKeys()
    added: set[str] = set()
    for batch in batches:
        assert keys.read_before(batch) == [key in added for key in batch]
        keys.add(batch)
        added.update(batch)
    assert keys.absent(asked) == [key for key in asked if key not in added]
    assert all((key in keys) == (key in added) for key in asked)


def test_runs_stop_merging_at_their_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen, "MERGED_RUN", 4)
    keys = ReadKeys()
    for start in range(0, 40, 2):
        keys.add([f"k{n}" for n in range(start, start + 2)])
    assert len(keys) == 40 and keys.absent(["k0", "k39", "k40"]) == ["k40"]
    assert len(keys._runs) == 10  # runs of 4 (the last one's partner never reaches 4 alone)
