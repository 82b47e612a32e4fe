"""The ids a sync has read, in 8 bytes each.

A snapshot (a CRM's full sync, the files source) deletes what it no longer read, so it must
remember every id it read: at a million deals with their stage history that is four million
ids, some 400 MB as a set of strings. Kept as sorted 64-bit hashes in numpy arrays it is 32 MB.
Two ids sharing a hash (odds about one in a million at that size) count as one: a vanished
record stays until the next sync, or the files source refuses a row as a repeated id once.
"""

from __future__ import annotations

import numpy as np

MERGED_RUN = 1 << 20  # keys in a run that is no longer merged (a merge copies both runs)


class ReadKeys:
    """The keys a snapshot read so far, 8 bytes each (Python's string hash, which is stable
    within the process), asked about a batch at a time: a full sync's and the files source's
    id set at millions of rows. Kept as sorted runs, the last merged into the one before while
    it is as large (so there are about log2(keys / batch) runs and each key is merged that many
    times), up to runs of a million keys: 4 million keys are a few runs of 8 MB, and a merge
    never copies more than 16 MB."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self._count = 0

    def read_before(self, keys: list[str]) -> list[bool]:
        """For each key, whether an earlier `add` held it (two keys sharing a hash, odds about
        one in a million at four million keys, would count as one)."""
        if not self._runs:
            return [False] * len(keys)
        wanted = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        # Looked up in their order, each search starts where the last one ended (numpy keeps
        # the lower bound for a larger key): fewer steps, and those in memory just read.
        order = np.argsort(wanted)
        wanted = wanted[order]
        found = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, wanted), run.size - 1)
            found |= run[at] == wanted
        placed = np.empty_like(found)
        placed[order] = found
        return placed.tolist()

    def add(self, keys: list[str]) -> None:
        if not keys:
            return
        run = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        run.sort()
        self._runs.append(run)
        self._count += len(keys)
        while (
            len(self._runs) > 1
            and self._runs[-1].size >= self._runs[-2].size
            and self._runs[-2].size < MERGED_RUN
        ):
            last = self._runs.pop()
            merged = np.concatenate([self._runs.pop(), last])
            merged.sort(kind="stable")  # two sorted runs: one linear merge
            self._runs.append(merged)

    def absent(self, keys: list[str]) -> list[str]:
        return [key for key, found in zip(keys, self.read_before(keys), strict=True) if not found]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.read_before([key])[0]

    def __len__(self) -> int:
        return self._count
