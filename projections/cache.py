"""`TimelineCache`: encoded timelines kept between requests, never served stale.

An entry is keyed by the served tables' generation and the asset, and stamped with
the asset's event count in that generation. A generation's tables only grow, one
event at a time in log order, so while the count is unchanged the asset's
transformations are too; any new event of the asset (a catch-up) or a rebuild (a new
generation) misses. The answer's `position` is not cached: it is the checkpoint read
in the same transaction as the stamp.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class TimelineCache:
    """A byte-bounded LRU of (url, transformations JSON) by (generation, asset); thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, str], tuple[int, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, generation: int, key: str, stamp: int) -> tuple[str, bytes] | None:
        """The entry for the asset if it was stored with this stamp; else None."""
        with self._lock:
            entry = self._entries.get((generation, key))
            if entry is None or entry[0] != stamp:
                return None
            self._entries.move_to_end((generation, key))
            return entry[1], entry[2]

    def put(self, generation: int, key: str, stamp: int, url: str, body: bytes) -> None:
        """Store an entry, replacing the asset's older one; least recently used go first."""
        size = len(body) + len(url)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop((generation, key), None)
            if old is not None:
                self._bytes -= len(old[2]) + len(old[1])
            self._entries[(generation, key)] = (stamp, url, body)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old_url, old_body) = self._entries.popitem(last=False)
                self._bytes -= len(old_body) + len(old_url)
