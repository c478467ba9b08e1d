"""Commit one group of appends: one call of `ikledger_append`, one commit.

The writer thread first takes its turn (`GroupCommitter.turn`): it opens a transaction
and locks the log's head row, the very lock `ikledger_append` takes, so it waits while
another receiver's group commits. Only then does the writer take its group, so the
appends that queued meanwhile join it: with several receivers on one log, groups grow
with the wait instead of each receiver committing a small group after every other's
(issue 20). The call and its COMMIT then go in one round trip (pipeline mode).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import orjson
import psycopg

from ..contract import AppendResult, NewEvent, Outcome, Rejection, StoreError, StoreUnavailable
from ..encoding import decode_time, now_ms
from .connect import Target

APPEND = (
    "SELECT outcomes, positions FROM ikledger_append("
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], %s::text[], "
    "%s::jsonb, %s, %s, %s)"
)
# The writers' turn: the head row's lock, taken before the group is (see the docstring).
# ikledger_turn() locks it for receiver roles, which may not lock a row themselves.
TURN = "SELECT ikledger_turn()"


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
        self._turn_held = False  # a transaction holds the head's lock: commit inside it

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = self.target.connect()
            self._check(conn)
            self._conn = conn
        return self._conn

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the head's row lock (in a transaction) while a group is taken and committed.

        StoreUnavailable when the lock or the connection is not had (a lock wait ends at
        the connection's lock_timeout). Whatever the group did not commit is rolled back
        on exit; a transaction left open by a stalled writer is ended by the server's
        idle_in_transaction_session_timeout.
        """
        try:
            with self.target.translated("waiting for the writers' turn"):
                conn = self._connection()
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(TURN)
        except StoreError as exc:
            self.close()
            raise exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc)) from exc
        except BaseException:
            self.close()
            raise
        self._turn_held = True
        try:
            yield
        finally:
            if self._turn_held:  # nothing committed: give the turn back
                self._turn_held = False
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self.close()

    def __call__(
        self,
        events: Sequence[NewEvent],
        rejections: Sequence[tuple[int, Rejection]],
        probe: bool,
    ) -> list[AppendResult]:
        """Commit this group in one transaction; StoreUnavailable when it did not commit.

        Inside the turn, the call and COMMIT go in one round trip; outside it, the call
        alone, in autocommit. Over a network a lost connection leaves the outcome
        unknown: the sender's retry is then recognised by id.
        """
        params = append_params(events, rejections, self.rejected_keep, probe)
        try:
            with self.target.translated("append"):
                conn = self._connection()
                if self._turn_held:
                    with conn.pipeline():
                        cursor = conn.execute(APPEND, params)
                        self._turn_held = False  # COMMIT or not, the transaction ends here
                        conn.execute("COMMIT")
                    outcomes, positions = cursor.fetchone()
                else:
                    outcomes, positions = conn.execute(APPEND, params).fetchone()
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
        self._turn_held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
