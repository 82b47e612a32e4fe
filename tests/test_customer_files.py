"""The files source's customers.csv, tickets.csv and repeated training rows (issue #16)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.sync import run_sync
from kpi.engine import KpiEngine
from kpi.models import Customer, SupportTicket, TrainingCompletion
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import parse_period
from tests.csv_folder import (
    CUSTOMER_HEADER,
    TICKET_HEADER,
    TRAINING_HEADER,
    minimal_folder,
    write_folder,
)

APP = AppConfig(currency="USD", currency_rates={"EUR": 1.5})


def sync(store: Store, folder: Path, accept_deletes: bool = False) -> SyncReport:
    return run_sync(store, FilesSource(folder, Normalizer(APP)), accept_deletes=accept_deletes)


def customers(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.records(Customer)}


def test_customers_and_tickets_load_with_every_field(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,Initech,2026-01-10,2026-05-01,1000,USD,2026-01-20,
            c2,p1,Hooli,2026-02-01,,200,eur,,c1
            c3,,Direct Co,2026-03-01,,,,,""",
        tickets=f"""{TICKET_HEADER}
            t1,c1,2026-02-01T23:30:00
            t2,c2,2026-02-02T01:00:00+02:00""",
    )
    report = sync(store, folder)
    assert report.problems == [] and report.warnings == []
    found = customers(store)
    assert found["c1"] == Customer(
        id="c1",
        partner_id="p1",
        name="Initech",
        became_customer_on=date(2026, 1, 10),
        churned_on=date(2026, 5, 1),
        mrr=Decimal("1000"),
        original_mrr=Decimal("1000"),
        currency="USD",
        onboarded_on=date(2026, 1, 20),
    )
    assert found["c2"].mrr == Decimal("300") and found["c2"].original_mrr == Decimal("200")
    assert found["c2"].currency == "EUR" and found["c2"].referred_by == "c1"
    assert found["c3"].partner_id is None and found["c3"].mrr is None
    tickets = {t.id: t for t in store.records(SupportTicket)}
    assert tickets["t1"].opened_at == datetime(2026, 2, 1, 23, 30, tzinfo=UTC)
    assert tickets["t2"].opened_at == datetime(2026, 2, 1, 23, 0, tzinfo=UTC)  # +02:00 in UTC
    assert (report.objects["customers"].new, report.objects["tickets"].new) == (3, 2)


def test_an_mrr_without_a_rate_is_empty_and_warns(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,Swiss,2026-01-10,,900,CHF,,""",
    )
    report = sync(store, folder)
    found = customers(store)["c1"]
    assert found.mrr is None and found.original_mrr == Decimal("900")
    assert "1 amount(s) in CHF have no rate in currency_rates and count as empty" in (
        report.warnings
    )


def test_bad_customer_and_ticket_rows_name_file_and_line(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,Fine,2026-01-10,,10,,,
            ,p1,No id,2026-01-10,,,,,
            c2,p1,No start,,,,,,
            c3,p1,Bad mrr,2026-01-10,,lots,,,
            c4,p1,Bad churn,2026-01-10,someday,,,,
            c1,p1,Again,2026-01-10,,,,,
            c5,p1,Cells,2026-01-10""",
        tickets=f"""{TICKET_HEADER}
            t1,c1,2026-02-01T10:00:00
            t2,,2026-02-01T10:00:00
            t3,c1,
            t4,c1,yesterday""",
    )
    report = sync(store, folder)
    assert set(customers(store)) == {"c1"}
    assert {t.id for t in store.records(SupportTicket)} == {"t1"}
    assert report.problems == [
        "customers.csv:3: id is empty",
        "customers.csv:4: became_customer_on is empty",
        "customers.csv:5: mrr 'lots' is not a number",
        "customers.csv:6: churned_on 'someday' is not a date (YYYY-MM-DD)",
        "customers.csv:7: repeats the id 'c1' of an earlier row",
        "customers.csv:8: has 4 cells, the header has 9",
        "tickets.csv:3: customer_id is empty",
        "tickets.csv:4: opened_at is empty",
        "tickets.csv:5: opened_at 'yesterday' is not an ISO 8601 timestamp",
    ]


def test_a_skipped_row_keeps_the_stored_copy_and_a_gone_row_is_deleted(
    store: Store, tmp_path: Path
) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,One,2026-01-10,,10,,,
            c2,p1,Two,2026-01-10,,20,,,
            c3,p1,Three,2026-01-10,,30,,,
            c4,p1,Four,2026-01-10,,40,,,
            c5,p1,Five,2026-01-10,,50,,,
            c6,p1,Six,2026-01-10,,60,,,""",
        tickets=f"""{TICKET_HEADER}
            t1,c1,2026-02-01T10:00:00""",
    )
    sync(store, folder)
    write_folder(
        folder,
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,One,2026-01-10,,10,,,
            c2,p1,Two,bad-date,,25,,,
            c3,p1,Three,2026-01-10,,30,,,
            c4,p1,Four,2026-01-10,,40,,,
            c5,p1,Five,2026-01-10,,50,,,""",
    )
    report = sync(store, folder)
    found = customers(store)
    assert set(found) == {"c1", "c2", "c3", "c4", "c5"}  # c6 left the file: deleted
    assert found["c2"].mrr == Decimal("20")  # the unreadable row kept its last good copy
    assert report.objects["customers"].deleted == 1


def test_unknown_partners_and_customers_are_kept_and_counted(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        customers=f"""{CUSTOMER_HEADER}
            c1,ghost,Haunted,2026-01-10,,,,,""",
        tickets=f"""{TICKET_HEADER}
            t1,c1,2026-02-01T10:00:00
            t2,nobody,2026-02-01T10:00:00""",
    )
    report = sync(store, folder)
    assert set(customers(store)) == {"c1"} and len(store.records(SupportTicket)) == 2
    assert "1 customer(s) name an unknown partner; they are kept" in report.warnings
    assert "1 support ticket(s) name an unknown customer; they are kept" in report.warnings


def _trainings(rows: str) -> str:
    return f"{TRAINING_HEADER}\n{rows}"


def test_identical_training_rows_are_separate_completions(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        trainings=_trainings(
            """p1,Pricing,2026-03-02
            p1,Pricing,2026-03-02
            p1,Onboarding,2026-03-02"""
        ),
    )
    report = sync(store, folder)
    assert report.problems == []
    assert len(store.records(TrainingCompletion)) == 3
    engine = KpiEngine(store, APP.kpi_settings)
    march = parse_period("2026-03", date(2026, 3, 31))
    assert engine.partner("p1", march)["kpis"]["courses_completed"] == 3

    again = sync(store, folder)  # the same file again: nothing new, nothing gone
    assert len(store.records(TrainingCompletion)) == 3
    trainings = again.objects["trainings"]
    assert (trainings.new, trainings.updated, trainings.deleted) == (0, 0, 0)

    write_folder(
        folder,
        trainings=_trainings(
            """p1,Pricing,2026-03-02
            p1,Onboarding,2026-03-02"""
        ),
    )
    fewer = sync(store, folder, accept_deletes=True)  # 1 of 3 is beyond the guard's 20%
    assert fewer.objects["trainings"].deleted == 1
    assert engine.partner("p1", march)["kpis"]["courses_completed"] == 2


def test_two_identical_rows_give_two_courses(store: Store, tmp_path: Path) -> None:
    folder = write_folder(
        minimal_folder(tmp_path),
        trainings=_trainings(
            """p2,Pricing,2026-03-02
            p2,Pricing,2026-03-02"""
        ),
    )
    sync(store, folder)
    engine = KpiEngine(store, APP.kpi_settings)
    card = engine.partner("p2", parse_period("2026-03", date(2026, 3, 31)))
    assert card["kpis"]["courses_completed"] == 2
