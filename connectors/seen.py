"""The ids a full sync has seen, in 8 bytes each.

A full sync deletes what the CRM no longer has, so it must remember every id it read: at a
million opportunities with their stage history that is three million ids, some 300 MB as a set
of strings. Kept as sorted 64-bit hashes in a numpy array (sorted in place) it is 24 MB. Two ids
sharing a hash (odds around one in ten million at that size) would only keep a vanished record
until the next full sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np


def _hash(key: str) -> int:
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class SeenIds:
    """A set of ids that only grows, then answers `in`."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._hashes = np.empty(0, dtype=np.int64)

    def update(self, keys: Iterable[str]) -> None:
        chunk = np.fromiter((_hash(key) for key in keys), dtype=np.int64)
        if chunk.size:
            self._chunks.append(chunk)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if self._chunks:
            self._hashes = np.concatenate([self._hashes, *self._chunks])
            self._hashes.sort()
            self._chunks = []
        wanted = _hash(key)
        index = int(np.searchsorted(self._hashes, wanted))
        return index < self._hashes.size and int(self._hashes[index]) == wanted

    def __len__(self) -> int:
        return self._hashes.size + sum(chunk.size for chunk in self._chunks)
