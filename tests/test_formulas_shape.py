"""The card's formulas built for speed keep the contract's key order and the values of the
general ones (`closed_kpis`) they stand beside."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kpi.aggregates import ClosedTotals, Totals
from kpi.formulas import CHANNEL_KEYS, KPI_KEYS, channels_of, closed_kpis, kpis_of
from kpi.models import Channel

counts = st.integers(min_value=0, max_value=10**6)
money = st.floats(min_value=0, max_value=1e9, allow_nan=False)
closed_totals = st.builds(
    ClosedTotals, won=counts, lost=counts, won_revenue=money, won_with_amount=counts
)


def test_kpis_of_has_the_contract_keys_in_order() -> None:
    assert list(kpis_of(Totals())) == list(KPI_KEYS)


@given(st.dictionaries(st.sampled_from([c.value for c in Channel]), closed_totals))
def test_channels_are_closed_kpis_of_each_channel_in_order(found: dict[str, ClosedTotals]) -> None:
    totals = Totals()
    totals.channels.update(found)
    channels = channels_of(totals)
    assert list(channels) == [c.value for c in Channel]
    for name, values in channels.items():
        closed = closed_kpis(found.get(name, ClosedTotals()))
        assert values == {key: closed[key] for key in CHANNEL_KEYS}
        assert list(values) == list(CHANNEL_KEYS)
