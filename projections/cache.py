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

In front of that, each reader thread keeps whole answers (`answer`/`keep_answer`):
the document `GET /timeline` sends, position included, valid while its connection
sees the file unchanged. The version is `PRAGMA data_version` (it changes when any
other connection commits: a catch-up, a rebuild's swap) with the connection's own
`total_changes` (its own commits), read in the transaction that built the answer;
the same cutoff range applies. A hit costs no transaction, no meta or stamp query
and no copy of the document.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .db import Version

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_ANSWER_BYTES = 4 * 1024 * 1024  # per reader thread

Cutoffs = tuple[str | None, str | None]
ALWAYS: Cutoffs = (None, None)


def _holds(cutoffs: Cutoffs, cutoff: str) -> bool:
    after, until = cutoffs
    return (after is None or cutoff > after) and (until is None or cutoff <= until)


class KeptAnswers:
    """Whole answers each reader thread keeps, by key, within `max_bytes` per thread:
    valid while the thread's connection is at the `version` they were built at and the
    stuck cut-off is within their `cutoffs`. Used by GET /timeline and GET /stats."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._threads = threading.local()  # .conn, .answers and .bytes: see _answers

    def _answers(self, conn: object) -> OrderedDict[object, tuple[Version, Cutoffs, bytes]]:
        """This thread's answers, emptied when it reads through another connection
        (versions of two connections do not compare)."""
        local = self._threads
        if getattr(local, "conn", None) is not conn:
            local.conn, local.answers, local.bytes = conn, OrderedDict(), 0
        return local.answers

    def get(self, conn: object, key: object, version: Version, cutoff: str) -> bytes | None:
        """The answer this thread kept under `key`, if `conn` is still at `version` and
        it holds at `cutoff`; else None."""
        answers = self._answers(conn)
        entry = answers.get(key)
        if entry is None or entry[0] != version or not _holds(entry[1], cutoff):
            return None
        answers.move_to_end(key)
        return entry[2]

    def keep(
        self, conn: object, key: object, version: Version, cutoffs: Cutoffs, document: bytes
    ) -> None:
        """Keep an answer built at `version` of `conn`; least recently used go first."""
        if len(document) > self.max_bytes:
            return
        answers, local = self._answers(conn), self._threads
        old = answers.pop(key, None)
        if old is not None:
            local.bytes -= len(old[2])
        answers[key] = (version, cutoffs, document)
        local.bytes += len(document)
        while local.bytes > self.max_bytes:
            _, (_, _, dropped) = answers.popitem(last=False)
            local.bytes -= len(dropped)


class TimelineCache:
    """A byte-bounded LRU of (url, transformations JSON) by (generation, asset); thread-safe.

    `hits` counts what was served from the cache (`answer_hits` of them whole),
    `misses` what had to be read from the tables.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, answer_bytes: int = DEFAULT_ANSWER_BYTES
    ):
        self.max_bytes = max_bytes
        self._answers = KeptAnswers(answer_bytes)
        self._entries: OrderedDict[tuple[int, str], tuple[int, Cutoffs, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.answer_hits = 0

    def get(
        self, generation: int, key: str, stamp: int, cutoff: str
    ) -> tuple[str, bytes, Cutoffs] | None:
        """The asset's (url, transformations, cutoffs) if stored with this stamp and
        holding at `cutoff`; else None."""
        with self._lock:
            entry = self._entries.get((generation, key))
            if entry is None or entry[0] != stamp or not _holds(entry[1], cutoff):
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end((generation, key))
            return entry[2], entry[3], entry[1]

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

    def answer(self, conn: object, key: str, version: Version, cutoff: str) -> bytes | None:
        """The whole answer this thread kept for the asset, if `conn` is still at
        `version` and it holds at `cutoff`; else None (and nothing is counted)."""
        document = self._answers.get(conn, key, version, cutoff)
        if document is not None:
            with self._lock:
                self.hits += 1
                self.answer_hits += 1
        return document

    def keep_answer(
        self, conn: object, key: str, version: Version, cutoffs: Cutoffs, document: bytes
    ) -> None:
        """Keep a whole answer built at `version` of `conn`, within this thread's budget."""
        self._answers.keep(conn, key, version, cutoffs, document)
