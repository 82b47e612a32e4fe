"""What `/health` says about the Socket Mode connection: open since when, the last frame
received, how many times it was re-established, and whether it has been down too long."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any


class SocketHealth:
    """Thread-safe connection facts, written by the Socket Mode runner and read by `/health`.

    Down from the start: a process that never connected is as unhealthy as one that lost its
    connection, once `down_after` seconds have passed.
    """

    def __init__(self, down_after: float = 60.0) -> None:
        self.down_after = down_after
        self._lock = threading.Lock()
        self._connected_since: datetime | None = None
        self._down_since = time.monotonic()
        self._last_frame: datetime | None = None
        self._opened = 0
        self._lost = 0

    def connected(self) -> None:
        """A connection opened (Slack's hello arrived). Refreshes replace the connection
        without a gap, so `connected_since` is when the current run of connections began."""
        with self._lock:
            self._opened += 1
            if self._connected_since is None:
                self._connected_since = datetime.now(UTC)
            self._last_frame = datetime.now(UTC)

    def lost(self) -> None:
        with self._lock:
            if self._connected_since is not None:
                self._lost += 1
                self._connected_since = None
                self._down_since = time.monotonic()

    def frame(self) -> None:
        with self._lock:
            self._last_frame = datetime.now(UTC)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the fields for `/health`)."""
        with self._lock:
            since, last = self._connected_since, self._last_frame
            opened, lost = self._opened, self._lost
            down = None if since else time.monotonic() - self._down_since
        fields: dict[str, Any] = {
            "connected": since is not None,
            "connected_since": since.isoformat() if since else None,
            "down_seconds": round(down) if down is not None else None,
            "last_frame_at": last.isoformat() if last else None,
            "connections_opened": opened,  # refreshes included
            "connections_lost": lost,
        }
        return down is None or down <= self.down_after, fields
