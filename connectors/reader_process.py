"""A large CSV file read in a process of its own while the sync's process writes.

At a million deals, deals.csv and stage_changes.csv hold five million records, and reading them
(CSV parsing, checks, conversions, keys, fingerprints, stays, each value as SQLite binds it)
costs as much CPU as writing them. A first load of such a file into an empty SQLite table
(`connectors.files`) runs `python -m connectors.reader_process` beside it, on the machine's
other core: it reads the file in batches and sends each down its standard output, pickled,
either as `NewRows` (every record of the batch clean: the columns the store inserts as they
are) or, for a batch with any record that is not (a bad cell, a wrong number of cells, an id
the batch repeats), as the raw numbered records, which the sync's process reads as it reads
every other file, so their messages are the builders' own. It imports only the CSV, the bulk
read and the normalizer (about 30 MB), and the pipe's buffer bounds how far it reads ahead.

A clean batch is exactly what `connectors.files` makes of its records in bulk (`BULK`,
`_settle`, `kpi.store.finish_row`, `_first_stays`, `driver_rows`); tests/test_reader_process.py
holds the two to the same stored rows.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from connectors.bulk_read import BULK, SETTINGS_READ
from connectors.csv_columns import Columns, naive_utc
from connectors.csv_text import csv_rows, records
from connectors.errors import SourceError
from connectors.fingerprints import Fingerprints
from connectors.normalize import Normalizer
from kpi.new_rows import NewRows, bound, next_moments
from kpi.record_keys import natural_key

Numbered = list[tuple[int, list[str]]]
#: What the process sends: ("header", cells), then ("rows", NewRows) or ("raw", Numbered) for
#: each batch, then ("end", the normalizer's counts) or ("error", a SourceError's sentence).
Message = tuple[str, Any]
#: The files read this way: deals and stage changes (the rest are small, or not read in bulk).
FILES = ("deals.csv", "stage_changes.csv")
#: The package's folder, on the reading process's import path whatever the working directory.
IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)


class Batches:
    """What a reading process sends: the file's header, then (iterated) its batches; once they
    are read, `counts` holds what its normalizer counted (amounts without a rate)."""

    def __init__(self, path: Path, process: subprocess.Popen[bytes], stream: IO[bytes]) -> None:
        self.path = path
        self.process = process
        self.stream = stream
        self.counts: dict[str, dict[str, int]] = {}
        kind, header = self._receive()
        if kind != "header":
            raise _stopped(path, process)
        self.header: list[str] = header

    def __iter__(self) -> Iterator[NewRows | Numbered]:
        while True:
            kind, body = self._receive()
            if kind == "end":
                self.counts = body
                return
            yield body

    def _receive(self) -> Message:
        try:
            message: Message = pickle.load(self.stream)  # noqa: S301 (our own child's output)
        except (EOFError, pickle.UnpicklingError):
            raise _stopped(self.path, self.process) from None
        if message[0] == "error":
            raise SourceError(message[1])
        return message


def clean_stage_changes(
    index: dict[str, int], width: int, prints: Fingerprints, batch: Numbered
) -> NewRows | None:
    """The batch's stage changes as columns to insert, or None when one of them is not
    clean. (Row by row: three cells a record, a tighter loop than the columns' checks.)"""
    deal_at, stage_at, moment_at = index["deal_id"], index["stage"], index["entered_at"]
    numbers: list[int] = []
    ids: list[str] = []
    deals: list[str] = []
    stages: list[str] = []
    entered: list[str] = []
    hashes: list[str] = []
    for number, cells in records(batch):
        if len(cells) != width:
            return None
        deal, stage = cells[deal_at].strip(), cells[stage_at].strip()
        moment = naive_utc(cells[moment_at].strip())
        if not deal or not stage or moment is None:
            return None
        numbers.append(number)
        ids.append(natural_key(deal, stage, moment.isoformat()))
        deals.append(deal)
        stages.append(stage)
        entered.append(moment.isoformat(" ", "microseconds"))  # as SQLite's DateTime stores it
        hashes.append(prints.of(cells))
    if len(set(ids)) != len(ids):
        return None
    columns: dict[str, list[Any]] = {
        "id": ids,
        "deal_id": deals,
        "stage": stages,
        "entered_at": entered,
        "left_at": next_moments(deals, entered),
        "row_hash": hashes,
    }
    hours = sorted({moment[:13] + ":00:00.000000" for moment in entered})
    return NewRows(numbers, columns, hours, len(batch))


def clean_deals(
    index: dict[str, int],
    width: int,
    prints: Fingerprints,
    normalize: Normalizer,
    batch: Numbered,
) -> NewRows | None:
    """The batch's deals as columns to insert (`BULK`'s values), or None when one of them is
    not clean; then what the normalizer counted of the batch is taken back, as the sync's
    process reads the batch again."""
    numbered = records(batch)
    if any(len(cells) != width for _, cells in numbered):
        return None
    counted = normalize.counted()
    found = BULK["deals.csv"](Columns(index, [cells for _, cells in numbered]), normalize)
    values = [value for value in found if value is not None]
    ids = [str(value["id"]) for value in values]
    if not values or len(values) != len(found) or len(set(ids)) != len(ids):
        normalize.restore(counted)
        return None  # (a batch of blank lines alone: nothing to insert)
    names = list(values[0])
    columns = {name: bound([value[name] for value in values]) for name in names}
    columns["row_hash"] = [prints.of(cells) for _, cells in numbered]
    return NewRows([number for number, _ in numbered], columns, [], len(batch))


def read(path: Path, encoding: str, normalize: Normalizer, size: int, out: IO[bytes]) -> None:
    """Reads `path` (one of `FILES`) in batches of `size` records, each sent to `out`."""

    def send(message: Message) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        with csv_rows(path, encoding) as reader:
            header = [name.strip() for name in next(reader, [])]
            send(("header", header))
            index = {name: at for at, name in enumerate(header)}
            deals = path.name == "deals.csv"
            settings = SETTINGS_READ.get(path.name)
            prints = Fingerprints(path.name, header, settings(normalize) if settings else "")
            for batch in reader.numbered(size):
                if deals:
                    block = clean_deals(index, len(header), prints, normalize, batch)
                else:
                    block = clean_stage_changes(index, len(header), prints, batch)
                send(("rows", block) if block is not None else ("raw", batch))
    except SourceError as error:
        send(("error", str(error)))
    else:
        send(("end", normalize.counted()))
    out.flush()


@contextmanager
def reading(path: Path, encoding: str, normalize: Normalizer, size: int) -> Iterator[Batches]:
    """The file's header and batches, read by a process of its own; a fault of the file
    raises its SourceError as the batches are read. The process ends with the block."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([IMPORT_ROOT, *sys.path])}
    settings = json.dumps(normalize.portable())
    command = [sys.executable, "-m", __name__, str(path), encoding, settings, str(size)]
    process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=environment
    )
    assert process.stdout is not None
    stream = process.stdout
    try:
        yield Batches(path, process, stream)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        stream.close()


def _stopped(path: Path, process: subprocess.Popen[bytes]) -> SourceError:
    code = process.wait()
    return SourceError(
        f"{path.name}: the process reading it stopped unexpectedly (exit code {code}); "
        "the sync changed nothing."
    )


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group: the sync's process stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, encoding, settings, size = argv
    normalize = Normalizer.from_portable(json.loads(settings))
    try:
        read(Path(path), encoding, normalize, int(size), sys.stdout.buffer)
    except BrokenPipeError:
        # The sync's process is gone (killed): nobody reads the rest, and its sentence, if
        # any, is its own. The standard output is closed without another attempt to flush it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
