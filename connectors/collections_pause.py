"""Fewer runs of Python's cycle collector while a bulk read makes millions of objects.

A sync's rows are lists, tuples and dicts freed by reference counting as soon as their batch is
written; the cycle collector, started every 700 allocations by default, finds nothing among
them but still walks every young object (and now and then every object), some 12% of a files
sync's CPU time. While the sync runs it waits for 100,000 allocations instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_ALLOCATIONS = 100_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_ALLOCATIONS, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
