"""Retention and erasure on SQLite: bodies removed in batches, each with its record.

Every batch is one short write transaction: the `erasures` row (with the first batch),
one `erased_bodies` row per body (its SHA-256 and size), then the bodies emptied, which
the `events_no_update` trigger allows only for a recorded position (migration m013).
Each batch takes the writers' turn (`X.db-writer.lock`, as every group commit does),
so an append waiting for it is woken as soon as a batch commits and goes first, where
SQLite's busy handler alone would let the prune win the lock again and again.
Freed pages go to SQLite's free list and are reused by the next appends (no
auto_vacuum: the file stops growing under a steady retention; it does not shrink).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from ..contract import Erasure, body_digest, clamp_position
from ..encoding import decode_time, now_ms
from ..sqlite_engine import sqlite3
from ..tlog.hashing import received_ms
from .commit import LOCK_SUFFIX
from .conn import connect, translated
from .turn import WritersTurn

# Bodies per transaction: a batch holds the write lock for milliseconds, not seconds.
BATCH = 1000
# After each batch: long enough for a writer woken by the released turn to take it.
YIELD = 0.002


def erase_bodies(
    path: str,
    timeout: float,
    kind: str,
    reason: str,
    *,
    position: int | None = None,
    received_before: str | None = None,
) -> int:
    """See `EventStore.erase_bodies`."""
    if kind not in ("prune", "erase") or not reason:
        raise ValueError("an erasure needs a kind (prune or erase) and a reason")
    if (position is None) == (received_before is None):
        raise ValueError("erase one position or the bodies received before a time")
    if position is not None:
        where, params = "position = ?", [clamp_position(position)]
    else:
        assert received_before is not None  # checked above: one of the two is given
        where, params = "received_at < ?", [received_ms(received_before)]
    select = (
        f"SELECT position, body FROM events WHERE {where} AND position > ? "
        "AND length(body) > 0 ORDER BY position LIMIT ?"
    )
    removed, after, seq = 0, 0, None
    with translated("cannot remove bodies"), _writers_turns(path, timeout) as turn:
        conn = connect(path, timeout)
        try:
            while True:
                with turn():
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        rows = conn.execute(select, [*params, after, BATCH]).fetchall()
                        if rows and seq is None:
                            seq = conn.execute(
                                "INSERT INTO erasures (erased_at, kind, reason) VALUES (?, ?, ?)",
                                (now_ms(), kind, reason),
                            ).lastrowid
                        _remove(conn, seq, rows)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                removed += len(rows)
                if len(rows) < BATCH:
                    return removed
                after = rows[-1][0]
                time.sleep(YIELD)
        finally:
            conn.close()


@contextlib.contextmanager
def _writers_turns(path: str, timeout: float) -> Iterator:
    """Yields `turn()`, a context holding the writers' turn (nothing without a lock file).

    Raises StoreUnavailable from `turn()` when the turn is not had within `timeout`.
    """
    fd = None
    if path and path != ":memory:" and not path.startswith("file:"):  # as the commits do
        with contextlib.suppress(OSError):  # a read-only directory: SQLite's locking alone
            fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    if fd is None:
        yield contextlib.nullcontext
        return
    writers = WritersTurn(fd, timeout)

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        writers.acquire()
        try:
            yield
        finally:
            writers.release()

    try:
        yield turn
    finally:
        if not writers.pending:  # a helper still blocked in flock keeps the descriptor
            os.close(fd)


def _remove(conn: sqlite3.Connection, seq: int | None, rows: list[tuple[int, bytes]]) -> None:
    conn.executemany(
        "INSERT INTO erased_bodies (position, erasure, body_sha256, size) VALUES (?, ?, ?, ?)",
        [(position, seq, body_digest(body), len(body)) for position, body in rows],
    )
    conn.executemany(
        "UPDATE events SET body = X'' WHERE position = ?", [(position,) for position, _ in rows]
    )


ERASURE_SQL = (
    "SELECT b.position, e.erased_at, e.kind, e.reason, b.body_sha256, b.size "
    "FROM erased_bodies AS b JOIN erasures AS e ON e.seq = b.erasure WHERE b.position = ?"
)


def erasure_row(row: tuple) -> Erasure:
    position, erased_at, kind, reason, digest, size = row
    return Erasure(position, decode_time(erased_at) or "", kind, reason, bytes(digest), size)
