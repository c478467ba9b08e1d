"""Rendered timeline pictures and tables kept between requests, never stale.

The picture and the table of fields are a pure function of the asset's transformations
and, while one of them is still open (`accepted`), of `now`. So an entry is keyed by a
digest of the transformations (any new event of the asset, a rebuild that changes
them, or an `as_of` gives another key) and, when something is open, by `now` floored to
a thousandth of the time axis, at least a second (`now` is floored so for the render
itself too, so a cached and a fresh render are the same bytes).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

MAX_ENTRIES = 32
PARSED_ENTRIES = 8  # parsed answers kept (a 200-transformation one is about 1 MB of objects)


class FragmentCache:
    """A small thread-safe LRU of rendered fragments."""

    def __init__(self, max_entries: int | None = None):
        self.max_entries = MAX_ENTRIES if max_entries is None else max_entries
        self._entries: OrderedDict[tuple, str] = OrderedDict()
        self._parsed: OrderedDict[bytes, tuple[dict, tuple[bytes, str | None]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(timeline: dict, now: datetime) -> tuple[tuple, datetime]:
        """The cache key of a timeline at `now`, and the `now` to render it with."""
        return FragmentCache._key(FragmentCache.digest(timeline), now)

    @staticmethod
    def digest(timeline: dict) -> tuple[bytes, str | None]:
        """What the fragments of a timeline depend on: its transformations and, while one is
        still open, when the earliest began (the picture then depends on `now` too)."""
        items = timeline.get("transformations") or []
        digest = hashlib.blake2b(orjson.dumps([timeline.get("asset"), items])).digest()
        if not any(item.get("status") == "accepted" for item in items):
            return digest, None
        starts = [item.get("first_at") or item.get("accepted_at") for item in items]
        return digest, min((s for s in starts if s), default="")

    @staticmethod
    def _key(digest: tuple[bytes, str | None], now: datetime) -> tuple[tuple, datetime]:
        """While a transformation is open its bar ends at `now`: `now` is floored to a step
        of about a thousandth of the time axis (a power of two seconds, at least one), less
        than a pixel of the picture, so it is redrawn only when it would look different."""
        value, began = digest
        if began is None:
            return (value, None), now
        quantum = 1.0
        if began:
            start = datetime.fromisoformat(began)
            # A power of two, so the grid stays put while the axis grows (it doubles at most).
            quantum = 2.0 ** math.ceil(math.log2(max(1.0, (now - start).total_seconds() / 1000)))
        floored = math.floor(now.timestamp() / quantum) * quantum
        moment = datetime.fromtimestamp(floored, now.tzinfo or UTC)
        return (value, moment.isoformat()), moment

    def parse(self, document: bytes) -> tuple[dict, tuple[bytes, str | None]]:
        """The timeline in `document` (GET /timeline's bytes) and its digest, kept by bytes.

        The same answer comes back as the same bytes while nothing changed (the
        timeline cache), so a page reuses the parse and the digest instead of redoing
        both per request; any change to the answer (a new position included) is a new key.
        """
        with self._lock:
            found = self._parsed.get(document)
            if found is not None:
                self._parsed.move_to_end(document)
                return found
        timeline = orjson.loads(document)
        found = (timeline, self.digest(timeline))
        with self._lock:
            self._parsed[document] = found
            while len(self._parsed) > min(self.max_entries, PARSED_ENTRIES):
                self._parsed.popitem(last=False)
        return found

    def get_or_render(
        self,
        timeline: dict,
        now: datetime,
        render: Callable[[datetime], str],
        digest: tuple[bytes, str | None] | None = None,
    ):
        key, moment = self._key(digest or self.digest(timeline), now)
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
