"""A first load's deals and stage changes read by a process of their own
(`connectors.reader_process`) leave the store exactly as reading them in the sync's process
does: the same stored rows, rollups, report, warnings and error lines, whatever the batches
hold (bad cells, repeated ids within a batch and across batches, blank lines, offsets,
fractions of seconds, amounts without a rate), and a reading process that stops or a broken
file changes nothing."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from connectors import files, reader_process
from connectors.errors import SourceError
from connectors.files import FilesSource
from connectors.normalize import Normalizer
from connectors.sync import run_sync
from kpi.store import Store, open_store
from tests.budget import examples
from tests.csv_folder import DEAL_HEADER, STAGE_HEADER, minimal_folder
from tests.demo_folder import demo_folder
from tests.test_files_bulk import APP, Outcome, assert_same, empty, folders, sync
from tests.test_files_bulk import files as folder_contents

#: A few records a batch, so that a small file is many batches.
BATCH = 3


@pytest.fixture
def reads_aside(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file of deals or stage changes is read aside on a first load (whatever its size),
    BATCH records a batch; the list of the files a reading process read."""
    monkeypatch.setattr(files, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(files, "READ_BATCH", BATCH)
    started: list[Path] = []
    real = reader_process.reading

    @contextmanager
    def counted(path: Path, *args: Any) -> Iterator[Any]:
        started.append(path)
        with real(path, *args) as found:
            yield found

    monkeypatch.setattr(reader_process, "reading", counted)
    return started


def both_ways(store: Store, folder_list: list[Path]) -> tuple[list[Outcome], list[Outcome]]:
    """The syncs of the folders in turn, read in the sync's process, then (on the emptied
    store) with a first load's stage changes read aside."""
    here = [sync(store, folder, True, parallel=False) for folder in folder_list]
    empty(store)
    aside = [sync(store, folder, True) for folder in folder_list]
    return here, aside


def sqlite_only(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the reading process loads SQLite stores only")


def test_batches_of_every_kind_load_as_in_the_sync_process(
    store: Store, tmp_path: Path, reads_aside: list[Path]
) -> None:
    sqlite_only(store)
    folder = minimal_folder(tmp_path / "first")
    (folder / "deals.csv").write_text(
        DEAL_HEADER
        + "\n"
        + "\n".join(
            [
                "ok1,p1,fine,10,eur,s,won,2026-01-01,2026-01-02,,,Podcast,,,,",  # a clean batch
                "ok2, p1 ,fine too,20.5,CHF,s,LOST,2026-01-01,2026-01-03,,Upsell,Web,,TRUE,,",
                "ok3,,direct,,,s,open,2026-01-01,,2026-03-01,new,,paid,false,2026-01-01,3",
                "bad1,p1,amount,ten,,s,won,2026-01-01,2026-01-02,,,,,,,",  # a batch with bad rows
                "ok4,p2,chf again,7,CHF,s,won,2026-01-01,2026-01-02,,,,,,,",
                "bad2,p1,cells,1,,s,open,2026-01-01",
                "ok1,p1,again,10,,s,won,2026-01-01,2026-01-02,,,,,,,",  # repeats an id read before
                "ok5,p2,fine,1,GBP,s,open,2026-01-01,,,,,,,,",
                "",  # a blank line
                "ok6,p2,twice,1,,s,open,2026-01-01,,,,,,,,",  # repeated within its batch
                "ok6,p2,twice,1,,s,open,2026-01-01,,,,,,,,",
                "ok7,p2,last,1,CHF,s,open,2026-01-01,,,,,,,,",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (folder / "stage_changes.csv").write_text(
        STAGE_HEADER
        + "\n"
        + "\n".join(
            [
                "ok1,Prospecting,2026-01-01T09:00:00+02:00",  # clean batch: offsets, fractions
                "ok1,Proposal,2026-01-03T10:00:00.250000",
                "ok2,Prospecting,2026-01-02 08:30",
                "ok1,Won,2026-01-05T10:00:00Z",  # a batch with a bad moment
                "ok1,Lost,yesterday",
                "ok2,Won,2026-01-04",
                "ok1,Proposal,2026-01-03T10:00:00.25",  # repeats a key read before
                "ok2,Negotiation,2026-01-03T00:00:00",
                "",  # a blank line
                "ok2,Lost,2026-01-06T00:00:00",  # repeated within its batch
                "ok2,Lost,2026-01-06T00:00:00",
                "ok1,Open,2026-01-07T00:00:00",
                "unknown,Open,2026-01-07T00:00:00",  # a deal no file holds
                "ok2,,2026-01-08",
                "ok2,Won,2026-01-09,extra",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    here, aside = both_ways(store, [folder])
    assert reads_aside == [folder / "deals.csv", folder / "stage_changes.csv"]
    assert len(here[0]["report"]["problems"]) >= 9
    assert any("CHF have no rate" in warning for warning in here[0]["report"]["warnings"])
    assert_same(here, aside)


@pytest.mark.slow
def test_the_demo_loads_the_same_read_aside(store: Store, reads_aside: list[Path]) -> None:
    sqlite_only(store)
    assert_same(*both_ways(store, [demo_folder(), demo_folder()]))
    assert len(reads_aside) == 2  # the first load only: the re-sync skips the unchanged files


def test_a_broken_file_says_what_it_says_in_the_sync_process(
    store: Store, tmp_path: Path, reads_aside: list[Path]
) -> None:
    sqlite_only(store)
    folder = minimal_folder(tmp_path / "first")
    path = folder / "stage_changes.csv"
    rows = "".join(f"ok1,Stage {n},2026-01-0{n % 9 + 1}T00:00:00\n" for n in range(20))
    path.write_bytes(f"{STAGE_HEADER}\n{rows}ok1,Won,2026\0-01-01\n".encode())
    errors = []
    for parallel in (False, True):
        with pytest.raises(SourceError) as raised:
            run_sync(store, FilesSource(folder, Normalizer(APP), parallel=parallel))
        errors.append(str(raised.value))
    assert reads_aside == [folder / "deals.csv", path]
    assert errors[0] == errors[1]
    assert "NUL byte" in errors[1]
    assert store.counts()["stage_changes"] == 0


def test_a_reading_process_that_stops_changes_nothing(
    store: Store, tmp_path: Path, reads_aside: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process sends its header and a batch, then dies: the sync fails in one sentence
    and the store holds what it held (the partners and deals of an earlier sync)."""
    sqlite_only(store)
    folder = minimal_folder(tmp_path / "first")
    run_sync(store, FilesSource(folder, Normalizer(APP), only=("partners.csv", "deals.csv")))
    before = store.counts()
    assert before["deals"] == 3
    rows = "".join(f"ok1,Stage {n},2026-01-0{n % 9 + 1}T00:00:00\n" for n in range(20))
    (folder / "stage_changes.csv").write_text(f"{STAGE_HEADER}\n{rows}", encoding="utf-8")
    monkeypatch.setattr(sys, "executable", str(dying_python(tmp_path)))
    with pytest.raises(SourceError, match=r"stopped unexpectedly \(exit code 3\)"):
        run_sync(store, FilesSource(folder, Normalizer(APP)))
    assert store.counts() == before


def dying_python(folder: Path) -> Path:
    """An interpreter that runs the reading process but ends it with code 3 after the first
    batch it sends."""
    script = folder / "dying-python"
    script.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c '"
        "import sys, pickle\n"
        "from connectors import reader_process\n"
        "class Out:\n"
        "    sent = 0\n"
        "    def write(self, data):\n"
        "        sys.stdout.buffer.write(data)\n"
        "    def flush(self):\n"
        "        sys.stdout.buffer.flush()\n"
        "real = pickle.dump\n"
        "def dump(message, out, **options):\n"
        "    real(message, out, **options)\n"
        "    Out.sent += 1\n"
        "    if Out.sent == 2:\n"
        "        out.flush(); sys.exit(3)\n"
        "pickle.dump = dump\n"
        "reader_process.main(sys.argv[3:])\n"
        '\' "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.mark.slow
@settings(
    max_examples=examples(25),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=folder_contents(), second=folder_contents())
def test_any_folder_loads_the_same_read_aside(
    database_url: str, reads_aside: list[Path], first: dict[str, str], second: dict[str, str]
) -> None:
    store = open_store(database_url)
    try:
        sqlite_only(store)
        empty(store)
        with folders([first, second, first]) as made:
            assert_same(*both_ways(store, made))
    finally:
        store.engine.dispose()


def test_one_cpu_reads_in_the_sync_process(
    store: Store, tmp_path: Path, reads_aside: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one CPU to run on, a reading process would only add the cost of sending."""
    sqlite_only(store)
    monkeypatch.setattr(files.os, "sched_getaffinity", lambda _pid: {0})
    folder = minimal_folder(tmp_path / "first")
    report = run_sync(store, FilesSource(folder, Normalizer(APP)))
    assert report.objects["stage_changes"].new == 2
    assert reads_aside == []


def test_a_reading_process_whose_reader_is_gone_ends_quietly(tmp_path: Path) -> None:
    """The sync's process killed half-way: the reading process stops at its next batch, with
    no traceback of its own on the terminal."""
    path = tmp_path / "stage_changes.csv"
    rows = "".join(f"d{n},Stage,2026-01-01T00:00:{n % 60:02d}\n" for n in range(200_000))
    path.write_text(f"{STAGE_HEADER}\n{rows}", encoding="utf-8")
    settings = json.dumps(Normalizer(APP).portable())
    command = [sys.executable, "-m", "connectors.reader_process", str(path), "utf-8", settings]
    process = subprocess.Popen([*command, "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert pickle.load(process.stdout)[0] == "header"
    process.stdout.close()
    assert process.wait(timeout=60) == 1
    assert process.stderr.read() == b""
