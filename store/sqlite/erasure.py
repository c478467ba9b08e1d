"""Retention and erasure on SQLite: bodies removed in batches, each with its record.

Every batch is one short write transaction: the `erasures` row (with the first batch),
one `erased_bodies` row per body (its SHA-256 and size), then the bodies emptied, which
the `events_no_update` trigger allows only for a recorded position (migration m013).
Freed pages go to SQLite's free list and are reused by the next appends (no
auto_vacuum: the file stops growing under a steady retention; it does not shrink).
"""

from __future__ import annotations

from ..contract import Erasure, body_digest, clamp_position
from ..encoding import decode_time, now_ms
from ..sqlite_engine import sqlite3
from ..tlog.hashing import received_ms
from .conn import connect, translated

# Bodies per transaction: a batch holds the write lock for milliseconds, not seconds.
BATCH = 1000


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
    with translated("cannot remove bodies"):
        conn = connect(path, timeout)
        try:
            while True:
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
        finally:
            conn.close()


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
