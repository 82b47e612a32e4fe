"""goals.csv of the files source (kpi-spec.md section 9): every rule a row can break is
reported with its file and line and the rest loads; a later row of the same partner, KPI and
range replaces an earlier one; a goal removed from the file leaves the store (goals are the
user's own intent, so the deletion guard does not hold them back)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.sync import run_sync
from kpi.models import Deal, Goal
from kpi.store import Store
from settings.app import AppConfig
from tests.csv_folder import minimal_folder

APP = AppConfig(currency="USD", currency_rates={"EUR": 1.5})
HEADER = "partner_id,kpi,period,target,direction"


def sync(store: Store, folder: Path) -> SyncReport:
    return run_sync(store, FilesSource(folder, Normalizer(APP)))


def write_goals(folder: Path, *rows: str) -> None:
    (folder / "goals.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")


def goals(store: Store) -> list[tuple[str | None, str, str, Decimal, str]]:
    return sorted(
        ((g.partner_id, g.kpi, g.period, g.target, g.direction.value) for g in
         store.records(Goal)),
        key=repr,
    )  # fmt: skip


def test_every_unreadable_goal_row_is_reported_and_the_rest_loads(
    store: Store, tmp_path: Path
) -> None:
    folder = minimal_folder(tmp_path)
    write_goals(
        folder,
        "p1,won_revenue,2026-Q4,500000,",  # 2
        "p1,WON_REVENUE,2026-10-01..2026-12-31,600000,AT_LEAST",  # 3: replaces line 2
        ",partner_revenue,2026,5000000,",  # 4: the program
        "p1,sales_cycle_days,2026-Q4,40,",  # 5: at_most by default
        "nobody,deal_count,2026-Q4,3,",  # 6
        "d1,deal_count,2026-Q4,3,",  # 7: an id of a deal, not of a partner
        "p1,won,2026-Q4,3,",  # 8
        "p1,channels,2026-Q4,3,",  # 9
        "p1,partners_left,2026,3,",  # 10: a program KPI for a partner
        "p1,deal_count,last-90d,3,",  # 11
        "p1,deal_count,this-quarter,3,",  # 12
        "p1,deal_count,2026-Q5,3,",  # 13
        "p1,deal_count,2026-Q4,-1,",  # 14
        "p1,close_rate,2026-Q4,-0.5,",  # 15: not additive, so a negative target is allowed
        "p1,deal_count,2026-Q4,lots,",  # 16
        "p1,deal_count,2026-Q4,NaN,",  # 17
        "p1,deal_count,2026-Q4,3,up",  # 18
        "p1,deal_count,2026-Q4,,",  # 19
        "p1,,2026-Q4,3,",  # 20
        "p1,deal_count,,3,",  # 21
        "p1,deal_count,2026-Q4",  # 22
    )
    report = sync(store, folder)
    assert report.problems == [
        "goals.csv:6: partner_id 'nobody' is not one of the partners",
        "goals.csv:7: partner_id 'd1' is not one of the partners",
        "goals.csv:8: kpi 'won' is not a numeric KPI key such as won_revenue or deal_count",
        "goals.csv:9: kpi 'channels' is not a numeric KPI key such as won_revenue or deal_count",
        "goals.csv:10: kpi 'partners_left' is a program KPI; leave the partner empty for it",
        "goals.csv:11: period 'last-90d' moves with the date; use a fixed one such as "
        "2026-Q4, 2026-11, 2026 or 2026-10-01..2026-12-31",
        "goals.csv:12: period 'this-quarter' moves with the date; use a fixed one such as "
        "2026-Q4, 2026-11, 2026 or 2026-10-01..2026-12-31",
        "goals.csv:13: period '2026-Q5' is not a period; use 2026-Q4, 2026-11, 2026 or "
        "2026-10-01..2026-12-31",
        "goals.csv:14: target -1 is negative; deal_count cannot be below 0",
        "goals.csv:16: target 'lots' is not a number",
        "goals.csv:17: target 'NaN' is not a finite number",
        "goals.csv:18: direction 'up' is not at_least or at_most",
        "goals.csv:19: target is empty",
        "goals.csv:20: kpi is empty",
        "goals.csv:21: period is empty",
        "goals.csv:22: has 3 cells, the header has 5",
    ]
    assert goals(store) == sorted(
        [
            ("p1", "won_revenue", "2026-10-01..2026-12-31", Decimal("600000"), "at_least"),
            (None, "partner_revenue", "2026", Decimal("5000000"), "at_least"),
            ("p1", "sales_cycle_days", "2026-Q4", Decimal("40"), "at_most"),
            ("p1", "close_rate", "2026-Q4", Decimal("-0.5"), "at_least"),
        ],
        key=repr,
    )
    assert report.objects["goals"].skipped == 16


def test_goals_removed_from_the_file_leave_the_store(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_goals(folder, "p1,deal_count,2026-Q4,3,", "p1,deal_count,2026,9,", ",deal_count,2026,9,")
    sync(store, folder)
    write_goals(folder, "p1,deal_count,2026,9,")
    report = sync(store, folder)
    assert goals(store) == [("p1", "deal_count", "2026", Decimal("9"), "at_least")]
    assert report.objects["goals"].deleted == 2  # two of three: more than the guard's 20%


def test_an_unreadable_goal_row_keeps_the_stored_goals(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path)
    write_goals(folder, "p1,deal_count,2026-Q4,3,")
    sync(store, folder)
    write_goals(folder, "p1,deal_count,2026-Q4,three,")
    sync(store, folder)
    assert goals(store) == [("p1", "deal_count", "2026-Q4", Decimal("3"), "at_least")]


def test_deals_expected_close_date_is_read(store: Store, tmp_path: Path) -> None:
    sync(store, minimal_folder(tmp_path))
    [direct] = [d for d in store.records(Deal) if d.id == "d3"]
    assert direct.expected_close_on == date(2026, 12, 1)


def test_a_goals_file_without_a_direction_column_takes_the_defaults(
    store: Store, tmp_path: Path
) -> None:
    folder = minimal_folder(tmp_path)
    (folder / "goals.csv").write_text(
        "kpi,partner_id,target,period\nsales_cycle_days,p1,40,2026\n", encoding="utf-8"
    )
    assert sync(store, folder).problems == []
    assert goals(store) == [("p1", "sales_cycle_days", "2026", Decimal(40), "at_most")]
