"""Commit one group of appends: one call of `ikledger_append`, one round trip, one commit."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import psycopg

from ..contract import AppendResult, NewEvent, Outcome, Rejection
from ..encoding import decode_time, now_ms
from .connect import Target

APPEND = (
    "SELECT outcomes, positions FROM ikledger_append("
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], %s::text[], "
    "%s::jsonb, %s, %s, %s)"
)


def _rejection(at_ms: int, rejection: Rejection) -> dict:
    return {
        "received_at": decode_time(at_ms),
        "status": rejection.status,
        "reason": rejection.reason,
        "event_id": rejection.event_id,
        "body_sha256": rejection.body_sha256.hex() if rejection.body_sha256 else None,
        "size": rejection.size,
        "remote_addr": rejection.remote_addr,
        "scheme": rejection.scheme,
    }


def append_params(
    events: Sequence[NewEvent],
    rejections: Sequence[tuple[int, Rejection]] = (),
    rejected_keep: int = 100,
    probe: bool = False,
) -> tuple:
    """The arguments of one `APPEND` call, stamped with the receiving process's clock."""
    return (
        [e.id for e in events],
        [e.type for e in events],
        [e.created_at for e in events],
        [e.received_at for e in events],
        [e.scheme for e in events],
        [e.body for e in events],
        [e.remote_addr for e in events],
        orjson.dumps([_rejection(at, r) for at, r in rejections]).decode(),
        decode_time(now_ms()),
        rejected_keep,
        probe,
    )


class GroupCommitter:
    """The writer thread's side of the log: its own connection, replaced after a failure.

    Called by one thread only (the group writer's), so the connection needs no lock.
    """

    def __init__(self, target: Target, rejected_keep: int, check):
        self.target = target
        self.rejected_keep = rejected_keep
        self._check = check  # refuses a connection that would not commit durably
        self._conn: psycopg.Connection | None = None

    def __call__(
        self,
        events: Sequence[NewEvent],
        rejections: Sequence[tuple[int, Rejection]],
        probe: bool,
    ) -> list[AppendResult]:
        """Commit this group in one transaction; StoreUnavailable when it did not commit.

        Over a network a lost connection leaves the outcome unknown: the sender's retry
        is then recognised by id.
        """
        params = append_params(events, rejections, self.rejected_keep, probe)
        try:
            with self.target.translated("append"):
                if self._conn is None or self._conn.closed:
                    conn = self.target.connect()
                    self._check(conn)
                    self._conn = conn
                outcomes, positions = self._conn.execute(APPEND, params).fetchone()
        except BaseException:
            self.close()  # a connection that failed may stay failed: start afresh
            raise
        if not events:
            return []
        return [
            AppendResult(Outcome(outcome), event.id, position)
            for event, outcome, position in zip(events, outcomes, positions, strict=True)
        ]

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
