"""Rendered timeline pictures and tables kept between requests, never stale.

The picture and the table of fields are a pure function of the asset's transformations
and, while one of them is still open (`accepted`), of `now`. So an entry is keyed by a
digest of the transformations (any new event of the asset, a rebuild that changes
them, or an `as_of` gives another key) and, when something is open, by `now` to the
second (`now` is then floored to that second for the render itself, so a cached and
a fresh render are the same bytes).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

import orjson

MAX_ENTRIES = 32


class FragmentCache:
    """A small thread-safe LRU of rendered fragments."""

    def __init__(self, max_entries: int | None = None):
        self.max_entries = MAX_ENTRIES if max_entries is None else max_entries
        self._entries: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(timeline: dict, now: datetime) -> tuple[tuple, datetime]:
        """The cache key of a timeline at `now`, and the `now` to render it with."""
        items = timeline.get("transformations") or []
        digest = hashlib.blake2b(orjson.dumps([timeline.get("asset"), items])).digest()
        if any(item.get("status") == "accepted" for item in items):
            now = now.replace(microsecond=0)
            return (digest, now.isoformat()), now
        return (digest, None), now

    def get_or_render(self, timeline: dict, now: datetime, render: Callable[[datetime], str]):
        key, moment = self.key(timeline, now)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        text = render(moment)
        with self._lock:
            self._entries[key] = text
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return text
