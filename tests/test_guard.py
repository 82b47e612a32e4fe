"""Nothing lost to a broken export: the deletion guard, and skipped rows keeping their last good
copy (kpi-spec.md section 1). Each test runs on SQLite and, when configured, PostgreSQL, and
compares a hash of every table before and after."""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from bot.answers import Answers
from bot.blockkit import Message
from bot.cli import main
from bot.digest import render_digest
from kpi import schema
from kpi.digest_data import build_digest
from kpi.engine import KpiEngine
from kpi.models import Deal
from kpi.store import Store
from settings.app import AppConfig
from settings.digests import DigestConfig
from settings.periods import Period, parse_period
from tests.csv_folder import DEAL_HEADER, PARTNER_HEADER, STAGE_HEADER
from tests.test_cli import command

PARTNERS = 40
DEALS = 400
REFUSAL = "more than sync.max_delete_share (20%) allows, so it changed nothing"


def write_program(folder: Path) -> Path:
    """A small program: 40 partners, 400 deals, two stage changes per deal."""
    folder.mkdir(parents=True, exist_ok=True)
    partners = [PARTNER_HEADER] + [
        f"p{n},Partner {n},Gold,2024-01-{n % 28 + 1:02d},,owner{n}@example.com,"
        for n in range(PARTNERS)
    ]
    deals, changes = [DEAL_HEADER], [STAGE_HEADER]
    for n in range(DEALS):
        status = ("won", "lost", "open")[n % 3]
        closed = f"2026-{n % 9 + 2:02d}-15" if status != "open" else ""
        deals.append(
            f"d{n},p{n % PARTNERS},Deal {n},{100 + n},USD,Stage,{status},2026-01-{n % 28 + 1:02d},"
            f"{closed},,new,Web,,true,,4"
        )
        changes.append(f"d{n},Prospecting,2026-01-{n % 28 + 1:02d}T09:00:00Z")
        changes.append(f"d{n},Negotiation,2026-02-{n % 28 + 1:02d}T09:00:00Z")
    for name, lines in (("partners", partners), ("deals", deals), ("stage_changes", changes)):
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def table_hashes(url: str) -> dict[str, str]:
    """A hash of every table's rows, except sync_runs (where a refusal is recorded)."""
    engine = create_engine(url)
    hashes = {}
    with engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            if table is schema.sync_runs:
                continue
            rows = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            hashes[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    engine.dispose()
    return hashes


@pytest.fixture
def program(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """(app.yaml, data folder), synced once into the store."""
    folder = write_program(tmp_path / "data")
    config = tmp_path / "app.yaml"
    config.write_text(f"files:\n  path: {folder}\ndatabase_url: '{database_url}'\n")
    assert cli(capsys, config)[0] == 0
    return config, folder


def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    try:
        main(["--config", str(config), "sync", *args])
        status = 0
    except SystemExit as done:
        status = int(done.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def header_only(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")


def truncated(path: Path) -> None:
    """Cut short mid-row, as a download that stopped at a fifth of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 5])


def junk_after_header(path: Path) -> None:
    """The real header, then an HTML login page where the rows should be."""
    header = path.read_text(encoding="utf-8").splitlines()[0]
    page = "<html><body>\n<h1>Your session expired</h1>\n<p>Please sign in again.</p>\n</body>"
    path.write_text(f"{header}\n{page}\n", encoding="utf-8")


def binary(path: Path) -> None:
    """A spreadsheet (a zip archive) saved under the CSV's name."""
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + random.Random(13).randbytes(20_000))


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "header-only": (header_only, REFUSAL),
    "truncated": (truncated, REFUSAL),
    "junk": (junk_after_header, REFUSAL),
    "binary": (binary, "line 1 is binary data, not CSV text"),
}


@pytest.mark.parametrize("file", ["deals.csv", "partners.csv"])
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_file_changes_nothing_and_says_so(
    program: tuple[Path, Path],
    store: Store,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    file: str,
    breakage: str,
) -> None:
    config, folder = program
    before = table_hashes(database_url)
    damage, sentence = BREAKAGES[breakage]
    damage(folder / file)
    status, out, err = cli(capsys, config)
    assert status == 2 and out == ""
    assert sentence in err and len(err.strip().splitlines()) == 1
    assert table_hashes(database_url) == before
    run = store.last_sync(status=None)
    assert run is not None and run.status == ("failed" if breakage == "binary" else "refused")
    assert run.error is not None and run.error in err


def test_the_refusal_names_table_rows_and_flag_and_accept_deletes_applies_it(
    program: tuple[Path, Path], store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    header_only(folder / "deals.csv")
    status, _, err = cli(capsys, config)
    assert status == 2
    assert err == (
        "partner-kpi: the sync would delete 400 of the 400 stored deals, more than "
        "sync.max_delete_share (20%) allows, so it changed nothing; check the source, and if "
        "those rows really left it, run `partner-kpi sync --accept-deletes`.\n"
    )
    assert cli(capsys, config, "--accept-deletes")[0] == 0
    assert store.counts()["deals"] == 0
    assert store.last_sync().report["objects"]["deals"]["deleted"] == 400  # type: ignore[union-attr]


def test_a_share_within_the_setting_is_deleted_and_the_setting_is_read(
    program: tuple[Path, Path], store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    deals = (folder / "deals.csv").read_text(encoding="utf-8").splitlines()
    (folder / "deals.csv").write_text("\n".join(deals[:-60]) + "\n", encoding="utf-8")  # 15%
    assert cli(capsys, config)[0] == 0
    assert store.counts()["deals"] == DEALS - 60
    (folder / "deals.csv").write_text("\n".join(deals[:-160]) + "\n", encoding="utf-8")
    config.write_text(config.read_text() + "sync:\n  max_delete_share: 0.5\n")
    assert cli(capsys, config)[0] == 0  # 100 of 340 is within 50%
    assert store.counts()["deals"] == DEALS - 160


def test_a_bad_cell_keeps_the_stored_deal_and_its_kpis(
    program: tuple[Path, Path], store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    app = AppConfig()
    period = parse_period("2026", date(2026, 12, 1))
    card_before = KpiEngine(store, app.kpi_settings).partner("p0", period)
    deal_before = store.records(Deal, ["d0"])
    before = table_hashes(database_url)
    path = folder / "deals.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith("d0,p0,Deal 0,100,")
    lines[1] = lines[1].replace(",100,", ",ten,", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, out, _ = cli(capsys, config)
    assert status == 0 and "deals.csv:2: amount 'ten' is not a number" in out
    assert store.records(Deal, ["d0"]) == deal_before
    assert deal_before[0].amount == Decimal("100")
    assert KpiEngine(store, app.kpi_settings).partner("p0", period)["kpis"] == card_before["kpis"]
    assert table_hashes(database_url) == before


def test_an_unreadable_row_without_an_id_holds_back_that_tables_deletions(
    program: tuple[Path, Path], store: Store, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    path = folder / "deals.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("Deal 0", "Deal zero")  # a real update still applies
    kept = [*lines[:-10], ",p1,no id,1,,s,open,2026-01-01,,,,,,,,"]  # 10 deals left the file
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    status, out, _ = cli(capsys, config, "--accept-deletes")
    assert status == 0
    assert "deals.csv: 1 unreadable row(s) have no id, so none of the 10 stored deals" in out
    assert store.counts()["deals"] == DEALS
    assert store.records(Deal, ["d0"])[0].name == "Deal zero"


def test_the_installed_command_refuses_with_one_sentence_and_no_traceback(
    program: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    truncated(folder / "partners.csv")
    done = subprocess.run(
        [*command(), "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "stored partners, more than sync.max_delete_share" in done.stderr


def test_a_refusal_shows_in_the_scorecard_footer_and_the_next_digest(
    program: tuple[Path, Path], store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    config, folder = program
    header_only(folder / "deals.csv")
    assert cli(capsys, config)[0] == 2
    refusal = "the sync would delete 400 of the 400 stored deals, more than"
    period = parse_period("2026", date(2026, 12, 1))
    message = render_scorecard(store, period)
    footer = message.blocks[-2]["elements"][0]["text"]
    assert footer.startswith("Data as of ")
    assert f":warning: The last sync was refused ({refusal}" in footer
    digest = DigestConfig.model_validate(
        {"name": "weekly", "channel": "C1", "schedule": "0 9 * * 1"}
    )
    data = build_digest(store, AppConfig(), digest, datetime.now(UTC))
    assert data.warning is not None and data.warning.verb == "was refused"
    shown = render_digest(data, "USD").text
    assert f"The last sync was refused just now ({refusal}" in shown
    assert "these numbers are from the sync of just now." in shown
    assert cli(capsys, config, "--accept-deletes")[0] == 0  # a good sync clears both
    assert build_digest(store, AppConfig(), digest, datetime.now(UTC)).warning is None
    assert "refused" not in render_scorecard(store, period).blocks[-2]["elements"][0]["text"]


def render_scorecard(store: Store, period: Period) -> Message:
    answers = Answers(store, AppConfig(), lambda: date(2026, 12, 1))
    return answers.scorecard("p0", period)
