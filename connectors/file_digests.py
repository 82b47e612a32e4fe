"""The files source's whole-file shortcut, the way make and rsync skip an unchanged file.

After a sync that read a CSV file cleanly (no problem row, no kept or unidentified row, its
sweep allowed), the store keeps, in the same transaction as the rows, a digest of the file:
BLAKE2b of its bytes together with what else its rows are made from (the fingerprints'
`FORMAT`, the settings its builder reads, the encoding), how many records it loaded, how many
of the source's rows its table then held, and what the read added to the normalizer's counts
(amounts in a currency without a rate: a function of the bytes and settings too); in
`sync_state`, object `file:<name>`. A later sync skips the file entirely (not parsed, nothing
written, no sweep) when the digest is the same and the table still holds exactly that many of
the source's rows: reading it again would find every record stored as it is (its fingerprint
is its stored hash) and nothing to delete, so the skip reports what that read would, every
record unchanged and the same counts added to the normalizer (so the same warnings).

This holds for a file whose stored rows follow from its own bytes and settings alone. A goal
is checked against the stored partners, so goals.csv is never skipped (`skippable=False`).
A stage change's partner key comes from its deal, but the row path does not rewrite an
unchanged stage change either (the deals' triggers keep the key), so stage changes, trainings,
survey answers, customers and tickets are skipped whatever the other files did.

Anything in doubt reads the file in full: no record, an unreadable one, another digest, a
different count. An unclean read that changed the table clears the record (one that wrote and
deleted nothing leaves the recorded rows, and their record, as they were). The digest is taken
before the read and again after it, and recorded only when both agree, so a file written to
during a sync is read in full by the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from connectors.fingerprints import FORMAT
from connectors.normalize import COUNTERS
from kpi.store import Store

CHUNK = 1 << 20  # bytes hashed at a time: the file is streamed, never read whole
PREFIX = "file:"  # a file's sync_state object: file:deals.csv


def file_digest(path: Path, settings: str, encoding: str) -> str:
    """BLAKE2b of the file's bytes and of everything else its rows are read with."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(repr((FORMAT, path.name, settings, encoding)).encode())
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Recorded:
    """What the last clean read of a file established."""

    digest: str
    ids: int  # the records it loaded: a skip reports them unchanged
    stored: int  # the source's rows of the file's table after that sync
    noted: dict[str, dict[str, int]]  # what it added to the normalizer's counts

    def text(self) -> str:
        found = {"digest": self.digest, "ids": self.ids, "stored": self.stored}
        return json.dumps(found | {"noted": self.noted}, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> Recorded | None:
        """The record kept in `text`, or None when there is none or it cannot be read."""
        try:
            found = json.loads(text or "")
            digest, ids, stored, noted = (found[k] for k in ("digest", "ids", "stored", "noted"))
            counts = [ids, stored, *(n for c in noted.values() for n in c.values())]
            named = all(isinstance(v, str) for c in noted.values() for v in c)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(digest, str) or not set(noted) <= set(COUNTERS) or not named:
            return None
        if not all(type(n) is int and n >= 0 for n in counts):
            return None
        return cls(digest, ids, stored, noted)


class FileDigest:
    """One file's digest within one sync's transaction: whether it may be skipped, and the
    record of its read."""

    def __init__(
        self,
        store: Store,
        connection: Connection,
        source: str,
        path: Path,
        settings: str,
        encoding: str,
        skippable: bool = True,
    ) -> None:
        self.store = store
        self.connection = connection
        self.source = source
        self.path = path
        self.settings = settings
        self.encoding = encoding
        self.skippable = skippable
        self.object = PREFIX + path.name
        self.kept = store.watermark(connection, source, self.object) if skippable else None
        self.before = file_digest(path, settings, encoding) if skippable else None

    def unchanged(self, stored: int) -> Recorded | None:
        """The last clean read's record when the file may be skipped: the same digest, and
        `stored` (the source's rows of its table now) the count recorded then."""
        recorded = Recorded.parse(self.kept)
        if recorded is None or recorded.digest != self.before or recorded.stored != stored:
            return None
        return recorded

    def finish(
        self, clean: bool, changed: bool, ids: int, stored: int, noted: dict[str, dict[str, int]]
    ) -> None:
        """Records a full read of the file that loaded `ids` records, left `stored` rows of
        the source in its table and added `noted` to the normalizer's counts (`added`), when
        the read was `clean`. An unclean read that `changed` the table clears the record; one
        that wrote and deleted nothing leaves the rows of the recorded read as they were, and
        its record with them. Writes only what differs from the record kept."""
        if not self.skippable:
            return
        value = self.kept if not clean and not changed else None
        if clean:
            after = file_digest(self.path, self.settings, self.encoding)
            if after == self.before and self.before is not None:
                value = Recorded(after, ids, stored, noted).text()
        if value != self.kept:
            self.store.set_watermark(self.connection, self.source, self.object, value)


def added(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """What a read added to the normalizer's counts (`Normalizer.counted` before and after)."""
    found = {}
    for counter, counts in after.items():
        grown = {v: n - before.get(counter, {}).get(v, 0) for v, n in counts.items()}
        if any(grown.values()):
            found[counter] = {v: n for v, n in grown.items() if n}
    return found
