"""`CsvReader.numbered` reads records a batch at a time and numbers each by the line it ends
on, as the csv reader's own count after each record says."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csv_text import csv_rows

CELL = st.sampled_from(
    ["", "x", "a b", '"quoted, comma"', '"two\nlines"', '"three\r\n\nlines"', '"cr\rin"', "\u2028"]
)
LINE = st.one_of(st.lists(CELL, min_size=1, max_size=4).map(",".join), st.just(""))


def one_at_a_time(path: Path) -> list[tuple[int, list[str]]]:
    with csv_rows(path, "utf-8") as reader:
        return [(reader.line_num, cells) for cells in reader]


def in_batches(path: Path, size: int) -> list[tuple[int, list[str]]]:
    with csv_rows(path, "utf-8") as reader:
        return [record for batch in reader.numbered(size) for record in batch]


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(LINE, max_size=12),
    ending=st.sampled_from(["\n", "\r\n"]),
    size=st.integers(1, 5),
)
def test_records_in_batches_end_on_the_lines_the_reader_counts(
    lines: list[str], ending: str, size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_bytes(ending.join(lines).encode())
        expected = one_at_a_time(path)
        assert in_batches(path, size) == expected


def test_a_record_over_several_lines_ends_on_its_last(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('a,b\n"one\ntwo\nthree",c\n\nd,"e\r\nf"\ng,h\n', encoding="utf-8")
    assert in_batches(path, 2) == [
        (1, ["a", "b"]),
        (4, ["one\ntwo\nthree", "c"]),
        (5, []),
        (7, ["d", "e\r\nf"]),
        (8, ["g", "h"]),
    ]
