"""The column-wise ranking (kpi.ranking) equals the per-partner one it replaced, a cached
ranking is never served once a write could have changed it (a sync's deals: the rollups move;
a survey answer; a partner leaving), and the in-memory copy of the running totals
(kpi.totals_image) gives the SQL's sums."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi import images, rollups, totals_image
from kpi.aggregates import ClosedTotals, Totals
from kpi.engine import KpiEngine
from kpi.formulas import kpis_of
from kpi.models import Partner, SurveyResponse
from kpi.quality import Standing, standings_of_columns
from kpi.ranking import RANK_SUMS, rank
from kpi.store import Store
from settings.app import AppConfig
from settings.kpi import DEFAULT_WEIGHTS
from settings.periods import Period, parse_period
from tests.budget import examples
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import assert_engine_equals_reference, fresh_store, load, programs
from tests.test_rollups import deal

counts = st.integers(min_value=0, max_value=40)
money = st.integers(min_value=0, max_value=10**12).map(lambda micros: micros / 1_000_000)
sums = st.tuples(
    counts, counts, money, counts, st.integers(0, 4000), st.integers(0, 300), counts, counts
).flatmap(
    # promoters and detractors among the answers
    lambda row: st.tuples(*(st.just(v) for v in row), st.integers(0, row[7])).flatmap(
        lambda full: st.tuples(*(st.just(v) for v in full), st.integers(0, full[7] - full[8]))
    )
)


def totals_of(row: tuple[float, ...]) -> Totals:
    won, lost, revenue, with_amount, cycle, pipeline, courses, answers, promoters, detractors = row
    totals = Totals(
        closed=ClosedTotals(
            won=int(won),
            lost=int(lost),
            won_revenue=revenue,
            won_with_amount=int(with_amount),
            cycle_days=int(cycle),
        )
    )
    totals.pipeline_count = int(pipeline)
    totals.courses = int(courses)
    totals.survey_responses = int(answers)
    totals.promoters = int(promoters)
    totals.detractors = int(detractors)
    return totals


def components_of(totals: Totals) -> dict[str, Any]:
    """One partner's quality components as the scorecard's `kpis` computes them."""
    kpis = kpis_of(totals)
    return {name: kpis[name] for name in DEFAULT_WEIGHTS}


def standings(
    components: dict[str, dict[str, Any]], weights: dict[str, float]
) -> dict[str, Standing]:
    """The standings of partners given one dict of components each."""
    columns = {
        name: np.array([values.get(name) for values in components.values()], dtype=np.float64)
        for name in weights
    }
    return standings_of_columns(list(components), columns, weights)


@settings(max_examples=examples(100), deadline=None)
@given(rows=st.lists(sums, min_size=1, max_size=40), idle=st.integers(0, 5))
def test_the_column_wise_ranking_equals_the_per_partner_one(
    rows: list[tuple[float, ...]], idle: int
) -> None:
    assert len(rows[0]) == len(RANK_SUMS)
    partners = [f"P{i}" for i in range(len(rows) + idle)]  # the idle ones have no sums at all
    given_sums = dict(zip(partners, rows, strict=False))
    ranking = rank(partners, given_sums, DEFAULT_WEIGHTS)
    components = {
        pid: components_of(totals_of(given_sums[pid]) if pid in given_sums else Totals())
        for pid in partners
    }
    assert ranking.components == components
    active = any(row[0] or row[1] or row[6] or row[7] for row in rows)
    assert ranking.standings == (standings(components, DEFAULT_WEIGHTS) if active else {})


PERIOD = parse_period("2026-Q1", date(2026, 11, 22))
APP = AppConfig()
CLOSED = date(2026, 2, 1)


def partner(partner_id: str, left_on: date | None = None) -> Partner:
    return Partner(id=partner_id, name=partner_id, joined_on=date(2025, 1, 1), left_on=left_on)


def write(store: Store, *records: object) -> None:
    with store.transaction() as connection:
        store.upsert(connection, list(records), "test")  # type: ignore[arg-type]


def test_a_cached_ranking_is_not_served_after_a_write(store: Store) -> None:
    write(
        store,
        partner("A"),
        partner("B"),
        partner("C"),
        deal("D1", "A", CLOSED, 5000),
        deal("D2", "B", CLOSED, 100),
    )
    engine = KpiEngine(store, APP.kpi_settings)
    first = engine.partner("A", PERIOD)
    assert first["rank"] == 1
    assert engine.partner("B", PERIOD)["rank"] == 2
    assert engine.rankings.hits == 1  # B's card ranked from A's

    # a sync's deal: B now sells more than A
    write(store, deal("D3", "B", CLOSED, 90_000))
    assert engine.partner("A", PERIOD)["rank"] == 2
    assert engine.partner("B", PERIOD)["rank"] == 1

    # a survey answer from Slack moves no rollup, but C's NPS now ranks
    before = engine.partner("C", PERIOD)["quality_score"]
    answer = SurveyResponse(
        id="S1", partner_id="C", score=10, submitted_at=datetime(2026, 2, 2, 12, tzinfo=UTC)
    )
    write(store, answer)
    assert engine.partner("C", PERIOD)["quality_score"] != before

    # a partner that left before the period is no longer ranked
    ranked = engine.partner("A", PERIOD)["ranked_partners"]
    write(store, partner("C", left_on=date(2025, 6, 1)))
    assert engine.partner("A", PERIOD)["ranked_partners"] == ranked - 1
    # and every answer equals a fresh engine's, which has no cache
    fresh = KpiEngine(store, APP.kpi_settings)
    for pid in ("A", "B", "C"):
        assert engine.partner(pid, PERIOD) == fresh.partner(pid, PERIOD)


def test_the_running_totals_copy_equals_the_sql(store: Store, monkeypatch: Any) -> None:
    """Every partner's ranking sums from the in-memory copy equal the SQL's for every period
    between days before the data and after it, and a write makes a new copy."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    first = date(2026, 1, 1)
    deals = [
        deal(f"D{i}", f"P{i % 3}", first + timedelta(days=3 * i), 100 * i + 1) for i in range(12)
    ]
    write(store, partner("P0"), partner("P1"), partner("P2"), *deals)
    engine = KpiEngine(store, APP.kpi_settings)
    engine.partner("P0", PERIOD)  # refreshes the rollups
    boundaries = [first + timedelta(days=n) for n in range(-3, 40, 2)]
    with store.engine.connect() as connection:
        version = rollups.version(connection)
        image = totals_image.current(connection, version)
        assert image is not None and image.version == version
        for start in boundaries:
            for end in boundaries:
                if start < end:
                    expected = rollups.rank_sums(connection, start, end)
                    assert sums_of(image, start, end, list(expected)) == expected, (start, end)
                    asked = ["P2", "nobody", "P0", "P1"]
                    table = image.rank_table(start, end, asked).tolist()
                    zeros = (0.0,) * len(rollups.RANK_FIELDS)
                    assert table == [list(expected.get(pid, zeros)) for pid in asked]
    write(store, deal("D99", "P2", first + timedelta(days=5), 7))
    engine.partner("P0", PERIOD)
    with store.engine.connect() as connection:
        version = rollups.version(connection)
        fresh = totals_image.current(connection, version)
        assert fresh is not None and fresh.version == version != image.version
        end = first + timedelta(days=10)
        expected = rollups.rank_sums(connection, first, end)
        assert sums_of(fresh, first, end, list(expected)) == expected
        assert sums_of(fresh, first, end, list(expected)) != sums_of(
            image, first, end, list(expected)
        )


def sums_of(
    image: totals_image.TotalsImage, start: date, end: date, partners: list[str]
) -> dict[str, tuple[Any, ...]]:
    """The copy's sums of `partners` in `rollups.rank_sums`' shape."""
    table = image.rank_table(start, end, partners).tolist()
    return {pid: tuple(row) for pid, row in zip(partners, table, strict=True)}


@settings(max_examples=examples(10), deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs())
def test_cards_ranked_from_the_copy_equal_the_reference(
    database_url: str, program: tuple[Dataset, AppConfig, Period], monkeypatch: Any
) -> None:
    """The engine's cards equal the reference when every store keeps a copy of its running
    totals (the benchmark's path): random programs, SQLite and PostgreSQL."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, app, period = program
    with fresh_store(database_url) as store:
        load(store, data)
        assert_engine_equals_reference(KpiEngine(store, app.kpi_settings), data, app, period)
