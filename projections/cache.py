"""`TimelineCache`: encoded timelines kept between requests, never served stale.

An entry is keyed by the served tables' generation and the asset, and stamped with
the asset's event count in that generation. A generation's tables only grow, one
event at a time in log order, so while the count is unchanged the asset's
transformations are too; any new event of the asset (a catch-up) or a rebuild (a new
generation) misses. The answer's `position` is not cached: it is the checkpoint read
in the same transaction as the stamp.

The `stuck` flags depend on the time too: a transformation is stuck when it is
`accepted` and its `last_at` is before the cutoff (now − stuck_after). So an entry
also keeps the range of cutoffs its flags hold for, `(after, until]`: after the
latest `last_at` of its stuck transformations, up to the earliest `last_at` of its
accepted ones that are not stuck (None: unbounded). A cutoff outside it misses.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

DEFAULT_MAX_BYTES = 32 * 1024 * 1024

Cutoffs = tuple[str | None, str | None]
ALWAYS: Cutoffs = (None, None)


def _holds(cutoffs: Cutoffs, cutoff: str) -> bool:
    after, until = cutoffs
    return (after is None or cutoff > after) and (until is None or cutoff <= until)


class TimelineCache:
    """A byte-bounded LRU of (url, transformations JSON) by (generation, asset); thread-safe.

    `hits` and `misses` count the answers of `get`.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, str], tuple[int, Cutoffs, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, generation: int, key: str, stamp: int, cutoff: str) -> tuple[str, bytes] | None:
        """The asset's entry if it was stored with this stamp and holds at `cutoff`; else None."""
        with self._lock:
            entry = self._entries.get((generation, key))
            if entry is None or entry[0] != stamp or not _holds(entry[1], cutoff):
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end((generation, key))
            return entry[2], entry[3]

    def put(
        self,
        generation: int,
        key: str,
        stamp: int,
        url: str,
        body: bytes,
        cutoffs: Cutoffs = ALWAYS,
    ) -> None:
        """Store an entry, replacing the asset's older one; least recently used go first."""
        size = len(body) + len(url)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop((generation, key), None)
            if old is not None:
                self._bytes -= len(old[3]) + len(old[2])
            self._entries[(generation, key)] = (stamp, cutoffs, url, body)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, old_url, old_body) = self._entries.popitem(last=False)
                self._bytes -= len(old_body) + len(old_url)
