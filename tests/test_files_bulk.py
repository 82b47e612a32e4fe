"""The files source's bulk read (columns checked in bulk, rows written without models, the
rollup triggers' marks batched) leaves the store exactly as reading every row by its builder
does: the same stored rows (row hashes, partner keys, stays), the same KPI rollups, the same
report and error lines, the same refusals of the deletion guard."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from connectors.files import BULK, FilesSource
from connectors.guard import DeletionRefused
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi import rollups, schema
from kpi.store import Store, open_store
from settings.app import AppConfig
from tests.budget import examples
from tests.csv_folder import DEAL_HEADER, STAGE_HEADER, minimal_folder
from tests.demo_folder import demo_folder

APP = AppConfig(
    currency="USD",
    currency_rates={"EUR": 1.5, "GBP": 1.25},
    channel_map={"Podcast": "owned", "Web": "paid"},
)
#: Tables that say how a sync ran, not what it stored.
BOOKKEEPING = {
    "sync_runs", "audit_log", "send_log", "alembic_version",
    "kpi_rollups_version",  # counts rebuilds (the ranking cache's key), not data
    "kpi_customers_version",  # counts customer and ticket writes (their copy's key), not data
}  # fmt: skip
#: Tables a sync can change: emptied between the two paths.
EMPTIED = [t for t in reversed(schema.metadata.sorted_tables) if t.name not in BOOKKEEPING]

Outcome = dict[str, Any]


def sync(
    store: Store,
    folder: Path,
    bulk: bool,
    app: AppConfig = APP,
    full_read: bool = False,
    parallel: bool = True,
) -> Outcome:
    """One `partner-kpi sync` of `folder`: its report (or refusal) and every table after it."""
    source = FilesSource(folder, Normalizer(app), bulk=bulk, full_read=full_read, parallel=parallel)
    try:
        report = run_sync(store, source).to_json()
    except DeletionRefused as refusal:
        outcome: Outcome = {"refused": str(refusal)}
    else:
        report.pop("seconds", None)
        outcome = {"report": report}
    with store.engine.connect() as connection:
        for table in EMPTIED:
            # (all but when a file's digest was recorded: connectors.file_digests)
            columns = [c for c in table.c if (table.name, c.name) != ("sync_state", "updated_at")]
            rows = connection.execute(select(*columns)).all()
            outcome[table.name] = sorted((tuple(row) for row in rows), key=repr)
    # The sync refreshed the stays of the deals it could not settle, which is all that a
    # refresh of every deal would change.
    with store.transaction() as connection:
        store.refresh_stays(connection)
        stays = connection.execute(select(schema.stage_changes)).all()
    assert sorted((tuple(row) for row in stays), key=repr) == outcome["stage_changes"]
    return outcome


def empty(store: Store) -> None:
    with store.transaction() as connection:
        for table in EMPTIED:
            connection.execute(delete(table))
        connection.execute(delete(schema.sync_runs))
    rollups.refresh(store.engine)


def both_paths(
    store: Store,
    folders: list[Path],
    apps: list[AppConfig] | None = None,
    full_read: bool = False,
) -> tuple[list[Outcome], list[Outcome]]:
    """The syncs of `folders` in turn (each with its app config, default APP), by builders
    and then (on the emptied store) in bulk, where a re-sync skips what is stored unchanged
    (with `full_read`, record by record; else also a whole file, `connectors.file_digests`)."""
    steps = list(zip(folders, apps or [APP] * len(folders), strict=True))
    by_rows = [sync(store, folder, False, app) for folder, app in steps]
    empty(store)
    in_bulk = [sync(store, folder, True, app, full_read) for folder, app in steps]
    return by_rows, in_bulk


def assert_same(by_rows: list[Outcome], in_bulk: list[Outcome]) -> None:
    for step, (rows, bulk) in enumerate(zip(by_rows, in_bulk, strict=True)):
        assert rows.keys() == bulk.keys(), step
        for name in rows:
            assert rows[name] == bulk[name], (step, name)


def test_bad_rows_read_in_bulk_say_what_the_builders_say(store: Store, tmp_path: Path) -> None:
    folder = minimal_folder(tmp_path / "first")
    (folder / "deals.csv").write_text(
        DEAL_HEADER
        + "\n"
        + "\n".join(
            [
                "ok1,p1,fine,10,eur,s,won,2026-01-01,2026-01-02,,,Podcast,,,,",
                "bad1,p1,amount,ten,,s,won,2026-01-01,2026-01-02,,,,,,,",
                "bad2,p1,status,1,,s,pending,2026-01-01,,,,,,,,",
                "bad3,p1,no close,1,,s,lost,2026-01-01,,,,,,,,",
                "bad4,p1,date,1,,s,open,2026-13-01,,,,,,,,",
                "bad5,p1,cells,1,,s,open,2026-01-01",
                "bad7,p1,csat,1,,s,won,2026-01-01,2026-01-02,,,,,,,6",
                "ok1,p1,again,10,,s,won,2026-01-01,2026-01-02,,,,,,,",
                ",p1,no id,1,,s,open,2026-01-01,,,,,,,,",
                "bad8,p1,type,1,,s,open,2026-01-01,,,cross-sell,,,,,",
                "bad9,p1,channel,1,,s,open,2026-01-01,,,,,tv,,,",
                "bad10,p1,nan,NaN,,s,open,2026-01-01,,,,,,,,",
                "ok2, p1 ,fine too,20,CHF,s,LOST,2026-01-01,2026-01-03,,Upsell,Web,,TRUE,,",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (folder / "stage_changes.csv").write_text(
        f"{STAGE_HEADER}\nok1,Prospecting,2026-01-01T09:00:00+02:00\nok1,Won,yesterday\n"
        "ok1,Won,2026-01-02 10:00\nok1,Lost,2026-01-02T10:00:00Z\nok2,,2026-01-01\n",
        encoding="utf-8",
    )
    by_rows, in_bulk = both_paths(store, [folder])
    assert len(by_rows[0]["report"]["problems"]) == 13
    assert_same(by_rows, in_bulk)


@pytest.mark.slow
def test_the_demo_loads_the_same_in_bulk(store: Store) -> None:
    assert_same(*both_paths(store, [demo_folder(), demo_folder()]))


def edited(folder: Path, target: Path, name: str, lines: dict[int, str | None]) -> Path:
    """A copy of `folder` whose file `name` has the numbered lines replaced (None: removed)."""
    shutil.copytree(folder, target)
    path = target / name
    old = path.read_text(encoding="utf-8").splitlines()
    new = [lines.get(at, line) for at, line in enumerate(old, 1)]
    path.write_text("\n".join(line for line in new if line is not None) + "\n", encoding="utf-8")
    return target


@pytest.fixture
def bulk_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The number of records each bulk read of deals.csv and stage_changes.csv was given."""
    sizes: dict[str, list[int]] = {}
    for name in ("deals.csv", "stage_changes.csv"):
        sizes[name] = []
        monkeypatch.setitem(BULK, name, counted(BULK[name], sizes[name]))
    return sizes


def counted(read: Any, sizes: list[int]) -> Any:
    def read_counted(columns: Any, normalize: Normalizer) -> Any:
        sizes.append(columns.size)
        return read(columns, normalize)

    return read_counted


def test_a_resync_reads_in_full_only_the_records_that_changed(
    store: Store, tmp_path: Path, bulk_reads: dict[str, list[int]]
) -> None:
    first = minimal_folder(tmp_path / "first")
    with (first / "deals.csv").open("a", encoding="utf-8") as handle:
        handle.write(
            "d4,p2,francs,70,CHF,s,lost,2026-01-01,2026-01-03,,,Podcast,,,,\n"  # no CHF rate
            "bad1,p1,amount,ten,,s,won,2026-01-01,2026-01-02,,,,,,,\n"
            "d3,p2,repeat,5,,s,open,2026-01-01,,,,,,,,\n"
            'd5,p2,quoted,"1",usd,s,open,2026-01-01,,,,Web,,,,\n'
        )
    with (first / "stage_changes.csv").open("a", encoding="utf-8") as handle:
        handle.write(
            "d3,Proposal,2026-02-01 12:00\nd3,Proposal,2026-02-01T12:00:00Z\n"
            "d3,Won,2026-02-02T08:00:00\nd3,Lost,2026-02-02T08:00:0x\n"  # the last: no moment
        )
    second = edited(
        first,
        tmp_path / "second",
        "deals.csv",
        {
            3: "d2,p2,Acme euro,100,EUR,Closed Won,won,2026-01-05,2026-03-01,,upsell,,,,,",
            4: None,  # d3 is gone, so its later repeat is read as the deal d3
            6: "bad1,p1,amount,10,,s,won,2026-01-01,2026-01-02,,,,,,,",  # now readable
            8: "d5,p2,quoted, 1 ,usd,s,open,2026-01-01,,,,Web,,,,",  # the same deal, other cells
        },
    )
    by_rows, in_bulk = both_paths(store, [first, first, second, second, first], full_read=True)
    assert_same(by_rows, in_bulk)
    assert in_bulk[0]["report"]["objects"]["deals"]["new"] == 5
    assert any("CHF" in warning for warning in in_bulk[1]["report"]["warnings"])
    # The bulk read got every record of the first sync, then only those not stored as they
    # are: the changed ones, those the store refused (bad1) or holds in other cells (the
    # repeat of d3), and the francs deal, whose unconvertible amount the report counts.
    assert bulk_reads["deals.csv"] == [7, 3, 5, 1, 5]
    # Stage changes: d3's two Proposal rows, their moment written two ways, share a key (the
    # second is refused as a repeat) and the Lost row has no moment: two of six read again.
    assert bulk_reads["stage_changes.csv"] == [6, 2, 2, 2, 2]
    assert in_bulk[2]["report"]["objects"]["deals"]["updated"] == 3  # d2, d3, d5 (new cells)


def test_changed_settings_read_the_records_they_touch_again(
    store: Store, tmp_path: Path, bulk_reads: dict[str, list[int]]
) -> None:
    folder = minimal_folder(tmp_path / "folder")
    other = AppConfig(
        currency="USD", currency_rates={"EUR": 2.0}, channel_map={"Paid Search": "earned"}
    )
    by_rows, in_bulk = both_paths(store, [folder] * 4, [APP, APP, other, APP], full_read=True)
    assert_same(by_rows, in_bulk)
    assert in_bulk[2]["report"]["objects"]["deals"]["updated"] == 3
    assert bulk_reads["deals.csv"] == [3, 0, 3, 3]
    assert bulk_reads["stage_changes.csv"] == [2, 0, 0, 0]  # they read no setting


# --- any folder, bad rows of every kind ---------------------------------------------------

IDS = st.sampled_from(["a", "b", "c", " b ", "d", ""])
TEXT = st.sampled_from(["", "x", " spaced ", "Ümlaut – dash", 'say "hi"', "a,b"])
DATE = st.sampled_from(
    ["2026-01-05", " 2026-02-01 ", "", "2026-13-01", "20260105", "x", "2026-02-30", "2025-12-31"]
)
STAMP = st.sampled_from(
    [
        "2026-01-05T10:00:00",
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00+02:00",
        "2026-01-05 10:30",
        "2026-01-05T10:00:00.123456-05:00",
        "",
        "yesterday",
        "2026-01-05",
    ]
)
NUMBER = st.sampled_from(["", "10", " 12.5 ", "ten", "NaN", "Infinity", "1e3", "-3", "1_000"])
CELLS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "partners": {
        "id": IDS,
        "name": TEXT,
        "tier": TEXT,
        "joined_on": DATE,
        "left_on": DATE,
        "owner_email": TEXT,
        "contact_emails": st.sampled_from(["", "a@x;b@y", " a@x ; ;b@y "]),
        "region": TEXT,
    },
    "deals": {
        "id": IDS,
        "partner_id": IDS,
        "name": TEXT,
        "amount": NUMBER,
        "currency": st.sampled_from(["", "USD", "eur", "CHF", "GBP"]),
        "stage": TEXT,
        "status": st.sampled_from(["open", "won", "lost", "WON", " Lost ", "pending", ""]),
        "created_on": DATE,
        "closed_on": DATE,
        "expected_close_on": DATE,
        "type": st.sampled_from(["", "new", "Upsell", "cross-sell"]),
        "lead_source": st.sampled_from(["", "Web", "Podcast", "Partner Referral"]),
        "channel": st.sampled_from(["", "paid", "EARNED", "tv"]),
        "registered": st.sampled_from(["", "true", "FALSE", "maybe"]),
        "registered_on": DATE,
        "csat": st.sampled_from(["", "1", "5", "6", "0", "x", "+3", " 4 "]),
    },
    "stage_changes": {"deal_id": IDS, "stage": TEXT, "entered_at": STAMP},
    "trainings": {"partner_id": IDS, "course": TEXT, "completed_on": DATE},
    "customers": {
        "id": IDS,
        "partner_id": IDS,
        "name": TEXT,
        "became_customer_on": DATE,
        "churned_on": DATE,
        "mrr": NUMBER,
        "currency": st.sampled_from(["", "usd", "EUR", "CHF"]),
        "onboarded_on": DATE,
        "referred_by": IDS,
    },
    "tickets": {"id": IDS, "customer_id": IDS, "opened_at": STAMP},
}


@st.composite
def files(draw: Callable[..., Any]) -> dict[str, str]:
    """A folder's CSV texts: rows of drawn cells, some with a cell too few, blank lines."""
    texts = {}
    for name, columns in CELLS.items():
        header = list(columns)
        if name != "partners" and draw(st.booleans()):
            header.reverse()  # columns may come in any order
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for _ in range(draw(st.integers(0, 8))):
            cells = [draw(columns[column]) for column in header]
            shape = draw(st.sampled_from(["row"] * 8 + ["short", "blank"]))
            writer.writerow([] if shape == "blank" else cells[:-1] if shape == "short" else cells)
        texts[f"{name}.csv"] = out.getvalue()
    return texts


@contextmanager
def folders(contents: list[dict[str, str]]) -> Iterator[list[Path]]:
    base = Path(tempfile.mkdtemp(prefix="files-bulk-"))
    try:
        made = []
        for number, texts in enumerate(contents):
            folder = base / str(number)
            folder.mkdir()
            for name, text in texts.items():
                (folder / name).write_text(text, encoding="utf-8")
            made.append(folder)
        yield made
    finally:
        shutil.rmtree(base)


@pytest.mark.slow
@settings(
    max_examples=examples(40),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=files(), second=files())
def test_any_folder_loads_the_same_in_bulk(
    database_url: str, first: dict[str, str], second: dict[str, str]
) -> None:
    store = open_store(database_url)
    try:
        empty(store)
        with folders([first, first, second, first]) as made:
            assert_same(*both_paths(store, made))
    finally:
        store.engine.dispose()
