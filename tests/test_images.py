"""The in-memory images (kpi.totals_image, kpi.stage_image, kpi.deal_image) give what the SQL
gives: every partner's period totals, channels and stage figures over random programs and
windows, on SQLite and PostgreSQL; and SQLite's moment texts parse to the instants they name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi import deal_image, images, rollups, stage_image, totals_image
from kpi.aggregates import Aggregator, PartnerKey, Totals
from kpi.engine import KpiEngine
from kpi.models import Deal, DealStatus, Partner, StageChange, TrainingCompletion
from kpi.training import latest_trainings
from settings.app import AppConfig
from settings.periods import Period, previous_period
from tests.budget import examples
from tests.kpi_compare import assert_same
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import UNKNOWN_PARTNER, fresh_store, load, programs


def windows_around(period: Period, shifts: list[int]) -> list[Period]:
    """The period, its previous one and, when not empty, a window around the period whose
    edges move by the two `shifts` (days): the windows the images are checked over."""
    low, high = sorted(shifts)
    around = Period("around", period.start + timedelta(days=low), period.end + timedelta(days=high))
    return [period, previous_period(period)] + ([around] if around.start < around.end else [])


@settings(max_examples=examples(15), deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs(), shifts=st.lists(st.integers(-90, 90), min_size=2, max_size=2))
def test_images_equal_the_sql(
    database_url: str,
    program: tuple[Dataset, AppConfig, Period],
    shifts: list[int],
    monkeypatch: Any,
) -> None:
    """Every partner's totals, training windows, channels and stages from the images equal the
    SQL's, for the period, the previous one and a window around them (totals and stage counts
    exactly, float sums to a relative 1e-9: their rows are added in another order)."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    data, app, period = program
    windows = windows_around(period, shifts)
    with fresh_store(database_url) as store:
        load(store, data)
        engine = KpiEngine(store, app.kpi_settings)
        engine.refresh_rollups()
        with store.engine.connect() as connection:
            version = rollups.version(connection)
            totals_copy = totals_image.current(connection, version)
            stages_copy = stage_image.current(connection, version)
            deals_copy = deal_image.current(connection, version)
            assert totals_copy is not None and stages_copy is not None and deals_copy is not None
            # the moments as the database converts them (texts in another form; PostgreSQL)
            converted = stage_image.load(connection, as_text=False)
            assert converted is not None
            for name in ("entered", "left", "lengths"):
                assert np.array_equal(getattr(converted, name), getattr(stages_copy, name)), name
            aggregator = Aggregator(connection, app.tz)
            pipeline = engine._pipeline(connection)
            some: list[PartnerKey] = [p.id for p in data.partners[:2]]
            some += [None, UNKNOWN_PARTNER, "nobody"]
            for window in windows:
                where = f"{window.start}..{window.end}"
                for chosen in (None, some):
                    assert aggregator.totals(window, chosen, image=totals_copy) == (
                        aggregator.totals(window, chosen)
                    ), where
                # training impact's windows around each partner's latest completion
                for ids in (None, [p for p in some if p is not None]):
                    assert latest_trainings(connection, window.end, ids, totals_copy) == (
                        latest_trainings(connection, window.end, ids)
                    ), where
                from_sql: dict[PartnerKey, Totals] = {}
                from_copy: dict[PartnerKey, Totals] = {}
                aggregator.add_channels(from_sql, window)
                aggregator.add_channels(from_copy, window, image=deals_copy)
                aggregator.add_stages(from_sql, window, pipeline)
                aggregator.add_stages(from_copy, window, pipeline, image=stages_copy)
                assert_same(_plain(from_copy), _plain(from_sql), where)


def _plain(totals: dict[PartnerKey, Totals]) -> dict[str, Any]:
    """Channels and stages of each partner as plain values (money as floats: SQL's sum over no
    amount is 0, an integer)."""
    return {
        str(key): {
            "channels": {
                name: {field: float(value) if "revenue" in field else value
                       for field, value in vars(closed).items()}
                for name, closed in t.channels.items()
            },
            "stages": {name: vars(stage) for name, stage in t.stages.items()},
        }
        for key, t in totals.items()
    }  # fmt: skip


DAY = timedelta(days=1)
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))


@given(st.lists(moments, max_size=40))
def test_sqlite_moment_texts_parse_to_their_instants(values: list[datetime]) -> None:
    texts = [value.strftime("%Y-%m-%d %H:%M:%S.%f") for value in values]
    parsed = stage_image.micros_of_texts([*texts, stage_image._NO_MOMENT])
    epoch = datetime(1970, 1, 1)
    wanted = [(value - epoch) // timedelta(microseconds=1) for value in values]
    assert parsed.tolist() == [*wanted, -1]


@pytest.mark.parametrize(
    "text", ["2026-01-05T10:00:00.000000", "2026-01-05 10:00:00", "2026-13-05 10:00:00.000000"]
)
def test_a_moment_in_another_form_is_refused(text: str) -> None:
    """Such a text makes the stage image read its moments converted by the database."""
    with pytest.raises(ValueError):
        stage_image.micros_of_texts(["2026-01-05 10:00:00.000000", text])


def test_changes_on_the_boundaries_count_as_the_sql_counts_them(
    store: Any, monkeypatch: Any
) -> None:
    """An entry or a stay's end exactly at a window's start counts in it, exactly at its end
    does not, in the image as in the SQL (a zone whose midnight is 05:00 UTC)."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    app = AppConfig(timezone="America/New_York")
    start, end = date(2026, 2, 2), date(2026, 2, 9)
    midnight = [datetime(d.year, d.month, d.day, 5, tzinfo=UTC) for d in (start, end)]
    second = timedelta(microseconds=1)
    moments = [midnight[0] - second, midnight[0], midnight[1] - second, midnight[1]]
    data = Dataset(
        partners=[Partner(id="P0", name="P0", joined_on=date(2025, 1, 1))],
        deals=[
            Deal(id=f"D{i}", partner_id="P0", name=f"D{i}", status=DealStatus.OPEN,
                 created_on=date(2026, 1, 1))
            for i in range(len(moments))
        ],
        stage_changes=[
            change
            for i, moment in enumerate(moments)
            for change in (
                StageChange(deal_id=f"D{i}", stage="Qualify", entered_at=moment - 2 * DAY),
                StageChange(deal_id=f"D{i}", stage="Propose", entered_at=moment),
            )
        ],
    )  # fmt: skip
    load(store, data)
    engine = KpiEngine(store, app.kpi_settings)
    engine.refresh_rollups()
    period = Period("week", start, end)
    with store.engine.connect() as connection:
        copy = stage_image.current(connection, rollups.version(connection))
        assert copy is not None
        aggregator = Aggregator(connection, app.tz)
        from_sql: dict[PartnerKey, Totals] = {}
        from_copy: dict[PartnerKey, Totals] = {}
        aggregator.add_stages(from_sql, period, ["Qualify", "Propose"])
        aggregator.add_stages(from_copy, period, ["Qualify", "Propose"], image=copy)
    assert from_sql["P0"].stages["Propose"].entered == 2  # at the start and just before the end
    assert from_sql["P0"].stages["Qualify"].stays == 2
    assert_same(_plain(from_copy), _plain(from_sql), "boundaries")


def test_training_windows_on_their_boundaries(store: Any, monkeypatch: Any) -> None:
    """Deals won 90 days before a completion and on its day count (before, after), the day
    before the first and the 90th day after it do not, from the image as from the SQL."""
    monkeypatch.setattr(images, "MIN_ROWS", 0)
    day = date(2026, 5, 4)
    offsets = [-91, -90, -1, 0, 89, 90]  # deal i is worth 2**i: each sum names its deals
    data = Dataset(
        partners=[Partner(id="P0", name="P0", joined_on=date(2025, 1, 1))],
        deals=[
            Deal(id=f"D{i}", partner_id="P0", name=f"D{i}", status=DealStatus.WON,
                 amount=float(2**i), created_on=day - 100 * DAY, closed_on=day + offset * DAY)
            for i, offset in enumerate(offsets)
        ],
        trainings=[TrainingCompletion(partner_id="P0", course="Basics", completed_on=day)],
    )  # fmt: skip
    load(store, data)
    KpiEngine(store, AppConfig().kpi_settings).refresh_rollups()
    with store.engine.connect() as connection:
        copy = totals_image.current(connection, rollups.version(connection))
        assert copy is not None
        end = day + 200 * DAY
        from_copy = latest_trainings(connection, end, image=copy)
        assert from_copy == latest_trainings(connection, end)
    mine = from_copy["P0"]
    assert (mine.before.won, mine.before.won_revenue) == (2, 2.0 + 4.0)  # -90 and -1
    assert (mine.after.won, mine.after.won_revenue) == (2, 8.0 + 16.0)  # 0 and 89
