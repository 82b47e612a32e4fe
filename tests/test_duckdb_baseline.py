"""The benchmark's DuckDB baseline (bench/duckdb_baseline.py) computes the engine's cards: every
partner's KPIs (sections 3 and 7), previous KPIs, channels, stages, quality score and rank equal
the engine's
(floats to a relative 1e-9) on a small bench store and on the demo data, in a time zone where
midnight is not UTC midnight. Skipped where duckdb (the `bench` extra) is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb")

from bench import duckdb_baseline as ddb
from bench.generate import AS_OF, PIPELINE, BenchSpec, build_database
from bench.phases import comparable
from connectors.demo_data import DEMO_CURRENCY_RATES, DEMO_PIPELINE
from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi.aggregates import Window
from kpi.engine import KpiEngine
from kpi.store import open_store
from settings.app import AppConfig
from settings.periods import parse_period, previous_period
from tests.demo_folder import DEMO_AS_OF, demo_folder
from tests.kpi_compare import assert_same

PERIODS = ("last-90d", "last-365d", "2026-Q2", "last-30d")


def _windows(engine: KpiEngine, period_text: str, as_of: Any) -> tuple[Any, Window, Window]:
    period = parse_period(period_text, as_of)
    tz = engine.settings.tz
    return period, Window.of(period, tz), Window.of(previous_period(period), tz)


def assert_duckdb_equals_engine(db: Path, app: AppConfig, stages: list[str], as_of: Any) -> None:
    engine = KpiEngine(open_store(f"sqlite:///{db}"), app.kpi_settings)
    connection = ddb.load(str(db))
    try:
        ddb.prepare(connection)
        queries = ddb.Queries(stages, app.kpi_settings.weights)
        seen: set[str] = set()  # the KPIs some partner had a value other than 0 or None of
        for text in PERIODS:
            period, window, previous = _windows(engine, text, as_of)
            wanted = engine.all_partners(period)
            got = ddb.all_partners(connection, queries, window, previous)
            assert sorted(got) == sorted(wanted)
            assert any(card["quality_score"] is not None for card in got.values()), text
            seen.update(
                key for card in got.values() for key, value in card["kpis"].items() if value
            )
            for pid, card in wanted.items():
                assert_same(got[pid], comparable(card), f"{text} {pid}")
            busiest = max(wanted, key=lambda pid: wanted[pid]["kpis"]["deal_count"])
            one = ddb.one_partner(connection, queries, busiest, window, previous)
            assert_same(one, comparable(engine.partner(busiest, period)), f"{text} one {busiest}")
        # section 7 too is compared on real customers, tickets and referrals
        assert {"customers_active", "tickets_per_customer", "referrals"} <= seen
    finally:
        connection.close()
        engine.store.engine.dispose()


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("duckdb-bench") / "bench.db"
    build_database(BenchSpec(partners=40, deals=3_000, seed=7, stays="direct"), path)
    yield path


def test_duckdb_cards_equal_the_engines_on_a_bench_store(bench_store: Path) -> None:
    app = AppConfig(stages=list(PIPELINE), timezone="America/New_York")
    assert_duckdb_equals_engine(bench_store, app, list(PIPELINE), AS_OF)


@pytest.mark.slow  # loading the demo through the files source takes ~10 s
def test_duckdb_cards_equal_the_engines_on_the_demo_data(tmp_path: Path) -> None:
    app = AppConfig(
        currency_rates=dict(DEMO_CURRENCY_RATES),
        stages=list(DEMO_PIPELINE),
        timezone="Asia/Tokyo",
    )
    db = tmp_path / "demo.db"
    store = open_store(f"sqlite:///{db}")
    report = run_sync(store, FilesSource(demo_folder(), Normalizer(app)))
    store.engine.dispose()
    assert report.object("deals").new > 1_000  # the demo loaded
    assert_duckdb_equals_engine(db, app, list(DEMO_PIPELINE), DEMO_AS_OF)


def test_the_comparison_can_fail(bench_store: Path) -> None:
    """A card that differs in one stage's average stay is caught (the check is not vacuous)."""
    app = AppConfig(stages=list(PIPELINE))
    engine = KpiEngine(open_store(f"sqlite:///{bench_store}"), app.kpi_settings)
    connection = ddb.load(str(bench_store))
    ddb.prepare(connection)
    period, window, previous = _windows(engine, "last-365d", AS_OF)
    got = ddb.all_partners(
        connection, ddb.Queries(list(PIPELINE), app.kpi_settings.weights), window, previous
    )
    connection.close()
    wanted = engine.all_partners(period)
    engine.store.engine.dispose()
    pid, stage = next(
        (pid, index)
        for pid, card in got.items()
        for index, row in enumerate(card["stages"])
        if row["avg_days"] is not None
    )
    got[pid]["stages"][stage]["avg_days"] *= 1 + 1e-6
    with pytest.raises(AssertionError, match="avg_days"):
        assert_same(got[pid], comparable(wanted[pid]), pid)
