"""The cyclic garbage collector held off while every partner's cards are built.

Building 2,000 cards allocates hundreds of thousands of small dicts, lists and floats, all
freed by reference counting (no cycles); the collector, which runs every 700 allocations and
now and then over every tracked object, spent a quarter to a third of the call's CPU time on
them. The pause is counted across threads: the collector comes back when the last pause that
found it enabled ends, also when the build raises.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # pauses under way, in every thread
_restore = False  # whether the first of them found the collector enabled


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while the block runs (reference counting still frees)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()
