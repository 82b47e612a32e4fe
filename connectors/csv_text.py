"""Reading a CSV file's rows in the configured encoding, with one sentence for bytes that are
not text: which file, line and byte, and the setting to change."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from connectors.errors import SourceError

ENCODING_SETTING = "files.encoding"
NUL = b"\0"
BLOCK_BYTES = 1 << 20  # read and decoded at a time when it is plain UTF-8 text


@contextmanager
def csv_rows(path: Path, encoding: str) -> Iterator[CsvReader]:
    """A csv.reader over `path` decoded with `encoding` (a UTF-8 byte-order mark is skipped);
    undecodable bytes and binary data raise SourceError while the rows are read."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise SourceError(f"{path} cannot be read ({error.strerror}).") from None
    with handle:
        reader = csv.reader(_decoded_lines(path, handle, encoding))
        yield CsvReader(path, reader)


class CsvReader:
    """A csv.reader whose faults (a NUL byte, a runaway quoted cell) are SourceErrors."""

    def __init__(self, path: Path, reader: Any) -> None:
        self.path = path
        self.reader = reader

    @property
    def line_num(self) -> int:
        return int(self.reader.line_num)

    def __iter__(self) -> CsvReader:
        return self

    def __next__(self) -> list[str]:
        try:
            row: list[str] = next(self.reader)
        except csv.Error as error:
            raise self._fault(error) from None
        return row

    def numbered(self, size: int) -> Iterator[list[tuple[int, list[str]]]]:
        """The records in lists of `size` (the last one shorter), each with the number of the
        line it ends on, read without a step of Python per record: a record that spans lines
        holds a line break in a cell for each line it adds (csv keeps them in quoted cells)."""
        while True:
            start = self.reader.line_num
            try:
                records: list[list[str]] = list(islice(self.reader, size))
            except csv.Error as error:
                raise self._fault(error) from None
            if not records:
                return
            end = self.reader.line_num
            if end - start == len(records):  # a line each
                yield list(zip(range(start + 1, end + 1), records, strict=True))
                continue
            numbers = []
            for cells in reversed(records):  # the last record ends on the last line read
                numbers.append(end)
                end -= 1 + sum(cell.count("\n") for cell in cells)
            yield list(zip(reversed(numbers), records, strict=True))

    def _fault(self, error: csv.Error) -> SourceError:
        return SourceError(
            f"{self.path.name} line {self.reader.line_num} cannot be read as CSV "
            f"({error}); export the file as CSV again."
        )


def records(batch: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    """A numbered batch's records: a blank line is none. (The first cell decides for most
    records, without a join.)"""
    return [
        (number, cells)
        for number, cells in batch
        if cells and (cells[0].strip() or "".join(cells).strip())
    ]


def _decoded_lines(path: Path, handle: Any, encoding: str) -> Iterator[str]:
    name = codecs.lookup(encoding).name
    wide = name.startswith(("utf-16", "utf-32"))  # where a NUL byte is part of a character
    decoder = codecs.getincrementaldecoder("utf-8-sig" if name == "utf-8" else name)()
    offset = 0
    number = 0
    while lines := handle.readlines(BLOCK_BYTES):
        block = b"".join(lines)
        state = decoder.getstate()
        if name == "utf-8" and NUL not in block:  # the usual file: a block at a time
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                decoder.setstate(state)  # the lines one by one say where
            else:
                if number == 0:
                    text = text.removeprefix("\ufeff")
                number += len(lines)
                offset += len(block)
                *whole, last = text.split("\n")
                for line in whole:
                    yield line + "\n"
                if last:
                    yield last
                continue
        for raw in lines:
            number += 1
            nul = -1 if wide else raw.find(NUL)
            if nul >= 0:
                raise SourceError(
                    f"{path.name} line {number} is binary data, not CSV text (a NUL byte at "
                    f"offset {offset + nul:,}); export the file as CSV again."
                )
            try:
                text = decoder.decode(raw)
            except UnicodeDecodeError as error:
                raise _not_in_encoding(path, number, offset, raw, error, encoding) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            offset += len(raw)
            yield text
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise _not_in_encoding(path, number, offset, b"", error, encoding) from None
    if tail:
        yield tail


def _not_in_encoding(
    path: Path, line: int, offset: int, raw: bytes, error: UnicodeDecodeError, encoding: str
) -> SourceError:
    byte = error.object[error.start : error.start + 1] if error.object else raw[:1]
    return SourceError(
        f"{path.name} line {line} is not {encoding} text (byte 0x{byte.hex().upper()} at "
        f"offset {offset + error.start:,}); set {ENCODING_SETTING} in app.yaml to the file's "
        "encoding (cp1252 for most Excel exports) or export it as UTF-8 CSV."
    )
