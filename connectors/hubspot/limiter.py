"""A client-side limiter that keeps a sync under HubSpot's rolling rate limits.

HubSpot counts a private app's requests in a rolling ten-second window (100 on lower tiers,
190 on Professional and Enterprise) and the CRM search endpoints separately (5 per second).
The limiter remembers when its recent calls went out and, before a call that would exceed a
window, waits until the oldest call in it has left the window. It keeps a safety margin:
HubSpot counts calls when they arrive, and network delays can bunch calls that left evenly
spaced, so it allows 90% of each limit and makes each window a quarter second longer. It
keeps the time it waited, for the sync report and the benchmark. Clock and sleep are
injectable so tests run in virtual time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Window:
    """At most `limit` calls in any `seconds`-long span."""

    limit: int
    seconds: float
    sent: deque[float] = field(default_factory=deque)

    def wait_needed(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[0] + self.seconds - now


#: The share of HubSpot's limits the limiter uses, and the seconds it adds to each window.
SAFE_SHARE = 0.9
WINDOW_MARGIN = 0.25


def safe_limit(limit: int) -> int:
    """The calls per window the limiter allows for HubSpot's `limit`: 90%, at least one."""
    return max(1, int(limit * SAFE_SHARE))


class RateLimiter:
    def __init__(
        self,
        per_10_seconds: int = 100,
        searches_per_second: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.general = Window(safe_limit(per_10_seconds), 10.0 + WINDOW_MARGIN)
        self.search = Window(safe_limit(searches_per_second), 1.0 + WINDOW_MARGIN)
        self.clock = clock
        self.sleep = sleep
        self.waited = 0.0  # seconds this limiter made the sync wait
        self.waits = 0

    def acquire(self, search: bool = False) -> None:
        """Blocks until one more call (a search call when `search`) fits every window."""
        windows = [self.general, self.search] if search else [self.general]
        while True:
            now = self.clock()
            wait = max(window.wait_needed(now) for window in windows)
            if wait <= 0:
                for window in windows:
                    window.sent.append(now)
                return
            self.waits += 1
            self.waited += wait
            self.sleep(wait)
