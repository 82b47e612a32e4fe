"""A CSV record's fingerprint: the row hash the files source stores with what it read.

A stored row's hash is what tells an unchanged row from a changed one. The files source's rows
are a function of the record's cells, the file's header, the settings its builder reads (a
deal's channel and amount depend on the lead-source map and the currency rates) and the code
that reads them, so a hash of those is the row's hash too: equal fingerprints mean equal rows,
and it costs one blake2b of the cells instead of encoding the built values. A record whose
fingerprint equals its key's stored hash was read from the same cells under the same settings
before, so it was readable then and is now, and reads into the row that is stored: an unchanged
re-sync need not check or build it (`connectors.files`).

Bump `FORMAT` whenever a builder or bulk reader of `connectors.files` changes what it makes of
a cell: every stored row's hash then differs, and the next sync rewrites them once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

FORMAT = "files-1"
SEPARATOR = "\x1f"  # the unit separator, which no export puts in a cell


class Fingerprints:
    """The fingerprints of one file's records, given its name, header and the settings its
    builder reads (as text; empty where it reads none)."""

    def __init__(self, file_name: str, header: Sequence[str], settings: str) -> None:
        self._base = hashlib.blake2b(digest_size=16)
        self._base.update(repr((FORMAT, file_name, tuple(header), settings)).encode())

    def of(self, cells: list[str]) -> str:
        """The record's fingerprint (32 hex digits, a stored row hash's width)."""
        joined = SEPARATOR.join(cells)
        # The cells split back at the separators, unless one holds it: then `repr` keeps them
        # apart (and holds no separator itself, so the two forms never meet).
        split = joined.count(SEPARATOR) == len(cells) - 1
        text = "J" + joined if split else "R" + repr(cells)
        digest = self._base.copy()
        digest.update(text.encode())
        return digest.hexdigest()
