"""The files source's whole-file shortcut (`connectors.file_digests`): an unchanged file is
skipped only when reading it would find every record stored as it is, and a skip reports what
that read would.

Whether a file was read is told by the store: a stored row whose hash was overwritten behind
the sync's back stays so when its file is skipped, and is written again when it is read (its
record's fingerprint is no longer its stored hash)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from connectors.file_digests import PREFIX
from connectors.files import SOURCE, FilesSource
from connectors.guard import DeletionRefused
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.sync import run_sync
from kpi import schema
from kpi.store import KINDS, Store
from settings.app import AppConfig
from tests.csv_folder import (
    CUSTOMER_HEADER,
    TICKET_HEADER,
    TRAINING_HEADER,
    minimal_folder,
    write_folder,
)

APP = AppConfig(
    currency="USD",
    currency_rates={"EUR": 1.5, "GBP": 1.25},
    channel_map={"Podcast": "owned", "Web": "paid"},
)
SURVEY_HEADER = "partner_id,respondent,campaign_id,score,comment,submitted_at"
#: The stored row of each file overwritten behind the sync's back.
TAMPERED = {
    "partners": "p1",
    "deals": "d2",
    "stage_changes": None,  # the first stored
    "trainings": None,
    "survey_responses": None,
    "customers": "c1",
    "support_tickets": "t1",
    "goals": None,
}
FILE_OF = {"trainings": "trainings", "support_tickets": "tickets"}
#: Tables that say how a sync ran, not what it stored.
BOOKKEEPING = {"sync_runs", "audit_log", "send_log", "alembic_version", "kpi_rollups_version"}


def full_folder(folder: Path) -> Path:
    """The minimal folder with every optional file too, all readable."""
    minimal_folder(folder)
    return write_folder(
        folder,
        trainings=f"""{TRAINING_HEADER}
            p1,Basics,2026-01-10
            p1,Basics,2026-01-10
            p2,Advanced,2026-02-01""",
        survey_responses=f"""{SURVEY_HEADER}
            p1,a@acme.example,c1,9,great,2026-03-01T12:00:00
            p2,b@globex.example,c1,6,,2026-03-02T12:00:00""",
        customers=f"""{CUSTOMER_HEADER}
            c1,p1,Initech,2026-01-10,,1000,USD,2026-01-20,
            c2,p1,Hooli,2026-02-01,,200,eur,,c1""",
        tickets=f"""{TICKET_HEADER}
            t1,c1,2026-02-01T23:30:00
            t2,c2,2026-02-02T01:00:00+02:00""",
        goals="""partner_id,kpi,period,target,direction
            p1,won_revenue,2026-Q4,500000,
            ,partner_revenue,2026,5000000,""",
    )


def sync(store: Store, folder: Path, app: AppConfig = APP, full_read: bool = False) -> SyncReport:
    return run_sync(store, FilesSource(folder, Normalizer(app), full_read=full_read))


def tamper(store: Store) -> None:
    """Overwrites the row hash of one stored row of every table."""
    with store.transaction() as connection:
        for table, key in TAMPERED.items():
            t = schema.metadata.tables[table]
            if key is None:
                key = connection.execute(select(t.c.id).order_by(t.c.id).limit(1)).scalar_one()
            connection.execute(update(t).where(t.c.id == key).values(row_hash="tampered"))


def read_again(store: Store) -> set[str]:
    """The files whose tampered row a sync wrote again: the files it read."""
    found = set()
    with store.engine.connect() as connection:
        for table in TAMPERED:
            t = schema.metadata.tables[table]
            still = connection.execute(select(t.c.id).where(t.c.row_hash == "tampered")).first()
            if still is None:
                found.add(FILE_OF.get(table, table))
    return found


def tables(store: Store) -> dict[str, list[Any]]:
    """Every stored row of every table a sync can change."""
    with store.engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in schema.metadata.sorted_tables
            if table.name not in BOOKKEEPING
        }


def same_report(report: SyncReport) -> dict[str, Any]:
    found = report.to_json()
    found.pop("seconds")
    return found


ALL = {"partners", "deals", "stage_changes", "trainings", "survey_responses", "customers"}
ALL |= {"tickets", "goals"}


def test_an_unchanged_resync_skips_every_file_but_goals_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    folder = full_folder(tmp_path / "folder")
    first = sync(store, folder)
    assert not first.problems and not first.warnings
    stored = tables(store)
    again = sync(store, folder)
    assert tables(store) == stored  # not a row, not a digest written
    assert all(o.new == o.updated == o.deleted == 0 for o in again.objects.values())
    tamper(store)
    sync(store, folder)
    assert read_again(store) == {"goals"}  # they depend on the stored partners
    sync(store, folder, full_read=True)
    assert read_again(store) == ALL


def test_a_full_sync_reads_every_file(store: Store, tmp_path: Path) -> None:
    """`partner-kpi sync --full` is how a person asks for everything to be read again."""
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    tamper(store)
    run_sync(store, FilesSource(folder, Normalizer(APP)), full=True)
    assert read_again(store) == ALL


def test_a_skip_reports_what_a_full_read_reports(store: Store, tmp_path: Path) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    # One answer leaves the file: the store keeps it (answers are never swept), so the
    # table holds more of the source's rows than the file gives records.
    (folder / "survey_responses.csv").write_text(
        f"{SURVEY_HEADER}\np1,a@acme.example,c1,9,great,2026-03-01T12:00:00\n", encoding="utf-8"
    )
    sync(store, folder)
    shortcut = sync(store, folder)
    stored = tables(store)
    full = sync(store, folder, full_read=True)
    assert tables(store) == stored
    assert same_report(shortcut) == same_report(full)
    assert shortcut.object("trainings").unchanged == 3
    assert shortcut.object("survey_responses").unchanged == 1


def test_one_byte_changed_reads_that_file_only_and_the_change_lands(
    store: Store, tmp_path: Path
) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    sync(store, folder)
    tamper(store)
    deals = folder / "deals.csv"
    deals.write_text(deals.read_text().replace("Acme big,200", "Acme big,201"))
    report = sync(store, folder)
    assert read_again(store) == {"deals", "goals"}
    assert report.object("deals").updated == 2  # d1 changed, d2 tampered
    assert store.records(schema_model("deals"), ["d1"])[0].amount == 201


def schema_model(table: str) -> Any:
    return next(model for model, kind in KINDS.items() if kind.table.name == table)


@pytest.mark.parametrize(
    ("other", "files"),
    [
        (AppConfig(currency="USD", currency_rates={"EUR": 2.0, "GBP": 1.25}, channel_map=APP.channel_map), {"deals", "customers"}),  # noqa: E501
        (AppConfig(currency="USD", currency_rates=APP.currency_rates, channel_map={"Web": "earned"}), {"deals"}),  # noqa: E501
    ],
)  # fmt: skip
def test_a_changed_setting_reads_the_files_that_read_it(
    store: Store, tmp_path: Path, other: AppConfig, files: set[str]
) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    tamper(store)
    sync(store, folder, other)
    assert read_again(store) == files | {"goals"}
    tamper(store)
    sync(store, folder, other)  # recorded under the new settings
    assert read_again(store) == {"goals"}


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("bad1,p1,amount,ten,,s,won,2026-01-01,2026-01-02,,,,,,,", "deals.csv:5: amount"),
        (",p1,no id,1,,s,open,2026-01-01,,,,,,,,", "deals.csv:5: id is empty"),
        ("d1,p1,again,10,,s,won,2026-01-01,2026-01-02,,,,,,,", "deals.csv:5: repeats the id"),
    ],
)
def test_a_file_read_with_a_problem_is_read_every_time(
    store: Store, tmp_path: Path, row: str, said: str
) -> None:
    folder = full_folder(tmp_path / "folder")
    with (folder / "deals.csv").open("a", encoding="utf-8") as handle:
        handle.write(row + "\n")
    report = sync(store, folder)
    for _ in range(3):
        assert [p for p in report.problems if p.startswith(said)], report.problems
        tamper(store)
        report = sync(store, folder)
        assert "deals" in read_again(store)


def test_a_skipped_file_counts_what_its_read_counted(store: Store, tmp_path: Path) -> None:
    """Amounts in a currency without a rate are no problem, but counted for a warning: a
    skip adds what the read of those bytes under those settings counted."""
    folder = full_folder(tmp_path / "folder")
    with (folder / "deals.csv").open("a", encoding="utf-8") as handle:
        handle.write("d4,p2,francs,70,CHF,s,lost,2026-01-01,2026-01-03,,,,,,,\n")
    with (folder / "customers.csv").open("a", encoding="utf-8") as handle:
        handle.write("c3,p2,Swiss,2026-02-01,,90,chf,,\n")
    sync(store, folder)
    shortcut = sync(store, folder)
    full = sync(store, folder, full_read=True)
    assert same_report(shortcut) == same_report(full)
    tamper(store)
    sync(store, folder)
    assert read_again(store) == {"goals"}
    assert shortcut.warnings == [
        "2 amount(s) in CHF have no rate in currency_rates and count as empty"
    ]


def test_a_file_read_with_a_problem_forgets_its_clean_read(store: Store, tmp_path: Path) -> None:
    """Clean, then a bad row (its id keeps the stored copy) beside a changed one, then the
    clean bytes again: the changed deal is read back, though the count never moved."""
    folder = full_folder(tmp_path / "folder")
    deals = folder / "deals.csv"
    clean = deals.read_text()
    sync(store, folder)
    deals.write_text(
        clean.replace("Acme big,200", "Acme big,999").replace("Acme euro,100", "Acme euro,x")
    )
    report = sync(store, folder)
    assert report.problems and report.object("deals").updated == 1
    deals.write_text(clean)
    sync(store, folder)
    assert store.records(schema_model("deals"), ["d1"])[0].amount == 200


def test_rows_deleted_behind_the_syncs_back_are_read_back(store: Store, tmp_path: Path) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    stored = tables(store)
    with store.transaction() as connection:
        connection.execute(delete(schema.trainings).where(schema.trainings.c.partner_id == "p2"))
        connection.execute(delete(schema.deals).where(schema.deals.c.id == "d3"))
    report = sync(store, folder)
    assert report.object("trainings").new == 1 and report.object("deals").new == 1
    assert tables(store) == stored


def test_a_truncated_file_is_read_and_the_guard_still_refuses(store: Store, tmp_path: Path) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    sync(store, folder)
    stored = tables(store)
    deals = folder / "deals.csv"
    deals.write_text("\n".join(deals.read_text().splitlines()[:2]) + "\n")
    for _ in range(2):
        with pytest.raises(DeletionRefused):
            sync(store, folder)
        assert tables(store) == stored


@pytest.mark.parametrize("kept", ["not json", '{"digest": 1}', None])
def test_a_missing_or_unreadable_digest_reads_the_file(
    store: Store, tmp_path: Path, kept: str | None
) -> None:
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    with store.transaction() as connection:
        store.set_watermark(connection, SOURCE, PREFIX + "tickets.csv", kept)
    tamper(store)
    sync(store, folder)
    assert read_again(store) == {"tickets", "goals"}


def test_a_copy_of_the_folder_elsewhere_is_skipped_too(store: Store, tmp_path: Path) -> None:
    """The digest is of the bytes and settings, not of the path."""
    folder = full_folder(tmp_path / "folder")
    sync(store, folder)
    tamper(store)
    sync(store, Path(shutil.copytree(folder, tmp_path / "copy")))
    assert read_again(store) == {"goals"}


def test_skipping_leaves_the_store_a_full_read_leaves(store: Store, tmp_path: Path) -> None:
    """Files that name another file's records (a stage change its deal, whose partner is its
    partner key; a ticket its customer) are skipped whatever those files did: the row path
    does not write their unchanged records either."""
    first = full_folder(tmp_path / "first")
    second = Path(shutil.copytree(first, tmp_path / "second"))
    deals = second / "deals.csv"
    deals.write_text(deals.read_text().replace("d1,p1,", "d1,p2,"))
    customers = second / "customers.csv"
    customers.write_text(customers.read_text().replace("c1,p1,", "c1,p2,"))
    steps = [first, first, second, second, first]
    outcomes = []
    for full_read in (False, True):
        with store.transaction() as connection:
            for table in reversed(schema.metadata.sorted_tables):
                if table.name not in BOOKKEEPING:
                    connection.execute(delete(table))
        found = []
        for folder in steps:
            report = same_report(sync(store, folder, full_read=full_read))
            state = tables(store)
            state["sync_state"] = [row[:3] for row in state["sync_state"]]  # not when
            found.append((report, state))
        outcomes.append(found)
    assert outcomes[0] == outcomes[1]
