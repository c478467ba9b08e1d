"""Retention and erasure on PostgreSQL: bodies removed in batches, each with its record.

Every batch is one short transaction: the `erasures` row (with the first batch), one
`erased_bodies` row per body (SHA-256 and size computed by the server from the body
itself), then the bodies emptied, which the trigger of migration 008 allows only for
a position so recorded. Freed space is reused by autovacuum (no VACUUM FULL needed).
"""

from __future__ import annotations

from ..contract import Erasure, clamp_position

# Bodies per transaction: a batch holds its row locks for milliseconds, not seconds.
BATCH = 1000

_RECORD = """
INSERT INTO erased_bodies (position, erasure, body_sha256, size)
SELECT position, %s, sha256(body), octet_length(body) FROM events
WHERE position = ANY(%s::bigint[])
"""

ERASURE_SQL = (
    "SELECT b.position, to_char(e.erased_at AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'), e.kind, e.reason, b.body_sha256, b.size '
    "FROM erased_bodies AS b JOIN erasures AS e ON e.seq = b.erasure WHERE b.position = %s"
)


def erase_bodies(
    connection,
    kind: str,
    reason: str,
    *,
    position: int | None = None,
    received_before: str | None = None,
) -> int:
    """See `EventStore.erase_bodies`; `connection()` lends a pooled connection."""
    if kind not in ("prune", "erase") or not reason:
        raise ValueError("an erasure needs a kind (prune or erase) and a reason")
    if (position is None) == (received_before is None):
        raise ValueError("erase one position or the bodies received before a time")
    params: list[int | str]
    if position is not None:
        where, params = "position = %s", [clamp_position(position)]
    else:
        where, params = "received_at::timestamptz < %s::timestamptz", [str(received_before)]
    select = (
        f"SELECT position FROM events WHERE {where} AND position > %s "
        "AND octet_length(body) > 0 ORDER BY position LIMIT %s FOR UPDATE"
    )
    removed, after, seq = 0, 0, None
    while True:
        with connection() as conn, conn.transaction():
            positions = [row[0] for row in conn.execute(select, [*params, after, BATCH])]
            if positions:
                if seq is None:
                    seq = conn.execute(
                        "INSERT INTO erasures (kind, reason) VALUES (%s, %s) RETURNING seq",
                        (kind, reason),
                    ).fetchone()[0]
                conn.execute(_RECORD, (seq, positions))
                conn.execute(
                    "UPDATE events SET body = ''::bytea WHERE position = ANY(%s::bigint[])",
                    (positions,),
                )
        removed += len(positions)
        if len(positions) < BATCH:
            return removed
        after = positions[-1]


def erasure_row(row: tuple) -> Erasure:
    position, erased_at, kind, reason, digest, size = row
    return Erasure(position, erased_at, kind, reason, bytes(digest), size)
