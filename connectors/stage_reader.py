"""A file of stage changes read in a process of its own while the sync's process writes.

At a million deals stage_changes.csv holds about four million records, and reading them (CSV
parsing, checks, keys, fingerprints, stays, the stored text of each moment) costs as much CPU
as writing them. A first load of the file into an empty store (`connectors.files`) runs
`python -m connectors.stage_reader` beside it, on the machine's other core: it reads the file
in batches and sends each one down its standard output, pickled, either as `NewStageChanges`
(every record of the batch clean: the columns the store inserts as they are) or, for any batch
with a record that is not (a bad cell, a wrong number of cells, a key the batch repeats), as
the raw numbered records, which the sync's process reads as it reads every other file, so
their messages are the builders' own. It imports only the CSV and fingerprint code (about
16 MB), and the pipe's buffer bounds how far it reads ahead.

The clean batch is exactly what `connectors.files` makes of such records in bulk
(`_bulk_stage_changes`, `_settle`, `kpi.store.finish_row`, `_first_stays`, `driver_rows`);
tests/test_stage_reader.py holds the two to the same stored rows.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from connectors.csv_text import csv_rows
from connectors.errors import SourceError
from connectors.fingerprints import Fingerprints
from kpi.record_keys import natural_key
from kpi.stage_columns import NewStageChanges

Numbered = list[tuple[int, list[str]]]
#: What the process sends: ("header", cells), ("rows", NewStageChanges), ("raw", Numbered),
#: ("error", a SourceError's sentence), then ("end", None).
Message = tuple[str, Any]
#: The package's folder, on the reading process's import path whatever the working directory.
IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)


def clean_batch(
    index: dict[str, int], width: int, prints: Fingerprints, batch: Numbered
) -> NewStageChanges | None:
    """The batch's records as columns to insert, or None when one of them is not clean (its
    batch is then read record by record in the sync's process)."""
    deal_at, stage_at, moment_at = index["deal_id"], index["stage"], index["entered_at"]
    numbers: list[int] = []
    ids: list[str] = []
    deals: list[str] = []
    stages: list[str] = []
    entered: list[str] = []
    hashes: list[str] = []
    for number, cells in batch:
        if not cells or not (cells[0].strip() or "".join(cells).strip()):
            continue  # a blank line is no record
        if len(cells) != width:
            return None
        deal, stage, text = cells[deal_at].strip(), cells[stage_at].strip(), cells[moment_at]
        text = text.strip()
        if not deal or not stage or not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        numbers.append(number)
        ids.append(natural_key(deal, stage, moment.isoformat()))
        deals.append(deal)
        stages.append(stage)
        entered.append(moment.isoformat(" ", "microseconds"))  # as SQLite's DateTime stores it
        hashes.append(prints.of(cells))
    if len(set(ids)) != len(ids):
        return None
    hours = sorted({moment[:13] for moment in entered})
    return NewStageChanges(
        numbers,
        ids,
        deals,
        stages,
        entered,
        _stays(deals, entered),
        hashes,
        [hour + ":00:00.000000" for hour in hours],
        len(batch),
    )


def _stays(deals: list[str], entered: list[str]) -> list[str | None]:
    """Each change's `left_at` as far as its batch tells: the next moment among the batch's
    changes of its deal (stored moments sort as the moments do)."""
    moments: dict[str, set[str]] = {}
    for deal, moment in zip(deals, entered, strict=True):
        moments.setdefault(deal, set()).add(moment)
    following: dict[tuple[str, str], str | None] = {}
    for deal, found in moments.items():
        ordered = sorted(found)
        for moment, later in zip(ordered, [*ordered[1:], None], strict=True):
            following[deal, moment] = later
    return [following[deal, moment] for deal, moment in zip(deals, entered, strict=True)]


def read(path: Path, encoding: str, settings: str, size: int, out: IO[bytes]) -> None:
    """Reads `path` in batches of `size` records, each sent to `out` (see `Message`)."""

    def send(message: Message) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        with csv_rows(path, encoding) as reader:
            header = [name.strip() for name in next(reader, [])]
            send(("header", header))
            index = {name: at for at, name in enumerate(header)}
            prints = Fingerprints(path.name, header, settings)
            for batch in reader.numbered(size):
                block = clean_batch(index, len(header), prints, batch)
                send(("rows", block) if block is not None else ("raw", batch))
    except SourceError as error:
        send(("error", str(error)))
    send(("end", None))
    out.flush()


@contextmanager
def reading(
    path: Path, encoding: str, settings: str, size: int
) -> Iterator[tuple[list[str], Iterator[NewStageChanges | Numbered]]]:
    """The file's header and its batches, read by a process of its own; a fault of the file
    raises its SourceError as the batches are read. The process ends with the block."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([IMPORT_ROOT, *sys.path])}
    command = [sys.executable, "-m", __name__, str(path), encoding, settings, str(size)]
    process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=environment
    )
    assert process.stdout is not None
    stream = process.stdout
    try:
        kind, header = _receive(path, process, stream)
        if kind != "header":
            raise _stopped(path, process)
        yield header, _batches(path, process, stream)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        stream.close()


def _batches(
    path: Path, process: subprocess.Popen[bytes], stream: IO[bytes]
) -> Iterator[NewStageChanges | Numbered]:
    while True:
        kind, body = _receive(path, process, stream)
        if kind == "end":
            return
        yield body


def _receive(path: Path, process: subprocess.Popen[bytes], stream: IO[bytes]) -> Message:
    try:
        message: Message = pickle.load(stream)  # noqa: S301 (our own child's output)
    except (EOFError, pickle.UnpicklingError):
        raise _stopped(path, process) from None
    if message[0] == "error":
        raise SourceError(message[1])
    return message


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
    read(Path(path), encoding, settings, int(size), sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
