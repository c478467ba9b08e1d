"""The SQLite backend's `commit`: one group of appends in one write transaction.

Every append of a group is made durable by the transaction's single fsync (WAL,
synchronous=FULL). Positions are assigned inside the write transaction (BEGIN
IMMEDIATE), so they are gap-free and in commit order even when several processes
write to the same file.

Writers of several processes (`ikledger serve --workers N`, or several `serve`s on
one file) take turns through a lock file beside the log (`X.db-writer.lock`, an
advisory `flock` held around each write transaction): a waiting writer blocks in the
kernel and is woken the moment the other commits, where SQLite's own busy handler
would sleep in steps of 1 to 100 ms. The wait is bounded by the busy timeout
(`turn.WritersTurn`): a writer stopped or stuck while it holds the turn makes the
others answer StoreUnavailable, not wait for good. The lock only orders writers that use it;
SQLite's write lock still guards the file against every other writer. A lock file
that cannot be opened (a read-only directory) leaves SQLite's locking alone in charge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..contract import (
    GENESIS,
    AppendResult,
    NewEvent,
    Outcome,
    Rejection,
    body_digest,
    chain_link,
)
from ..encoding import encode_scheme, encode_time, now_ms, utc_now
from ..lazylog import lazy_logger
from ..sqlite_engine import sqlite3
from ..tlog.tree import Frontier
from .conn import connect, translate
from .migrations import DELIVERY_FOLD, TYPE_FOLD
from .tree import grow, load_frontier
from .turn import WritersTurn

# `type_counts` holds the events of positions up to the last multiple of TYPE_FOLD at or
# below the head, `delivery_counts` the journal rows up to the last multiple of
# DELIVERY_FOLD seqs; the group that crosses a multiple folds the rows before it in, and
# readers count the rest (fewer than a fold). So most groups write no counter page.

log = lazy_logger("ikledger.store")

LOCK_SUFFIX = "-writer.lock"

EVENT_COLUMNS = "position, id, type, created_at, received_at, scheme, chain, body"


class SQLiteCommit:
    """The writer's `commit` for one SQLite file; owns the only write connection."""

    def __init__(self, path: str, *, busy_timeout: float, rejected_keep: int):
        self.path = path
        self.busy_timeout = busy_timeout
        # At least one: the newest journal row is never pruned, so seqs only grow.
        self.rejected_keep = max(1, rejected_keep)
        # Opened at the first commit (and again after a failed transaction): a store
        # opened only to read never pays for a connection that would read the schema.
        self._conn: sqlite3.Connection | None = None
        self._reopen = False  # set by a failed transaction: the next one starts afresh
        self._turn: WritersTurn | None = None  # the writers' lock, opened at the first commit
        self._lock_tried = False
        # The tree's right edge after this connection's last commit, and the head it
        # belongs to (position, chain): reused while no other writer has appended since,
        # so a group reads no stored hash. Dropped by any failed transaction.
        self._frontier: Frontier | None = None
        self._frontier_head: tuple[int, bytes] | None = None

    def _writers_lock(self) -> WritersTurn | None:
        """The writers' lock file's turn, or None where there is no lock file."""
        if not self._lock_tried:
            self._lock_tried = True
            if self.path and self.path != ":memory:" and not self.path.startswith("file:"):
                try:
                    fd = os.open(
                        self.path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
                    )
                except OSError as exc:
                    log.warning(
                        "no writers' lock file (%s): SQLite's locking alone orders writers", exc
                    )
                else:
                    self._turn = WritersTurn(fd, self.busy_timeout)
        return self._turn

    def __call__(
        self, events: list[NewEvent], rejections: list[tuple[int, Rejection]], probe: bool
    ) -> list[AppendResult]:
        """Commit one group; on any failure roll back and raise (StoreError when translated).

        Called inside `turn()` (by the group writer), so the rollback of a failed
        transaction is done before the next writer's turn.
        """
        try:
            if self._conn is None:
                self._conn = connect(self.path, self.busy_timeout)
            elif self._reopen:
                # A connection that failed may stay failed: opened read-only, or after an
                # I/O error. Opened before the old one is closed, which SQLite would
                # otherwise keep open (for the readers' locks) and hand back to it.
                fresh = connect(self.path, self.busy_timeout)
                self._conn.close()
                self._conn = fresh
            self._reopen = False
            return self._commit(self._conn, events, rejections, probe)
        except sqlite3.Error as exc:
            self._abandon()
            raise translate(exc) from exc
        except BaseException:
            self._abandon()
            raise

    @contextmanager
    def turn(self) -> Iterator[None]:
        """This writer's turn among the writers of every process that uses the lock file.

        Raises StoreUnavailable when it is not had within the busy timeout.
        """
        turn = self._writers_lock()
        if turn is None:
            yield
            return
        turn.acquire()
        try:
            yield
        finally:
            turn.release()

    def _abandon(self) -> None:
        self._frontier = self._frontier_head = None
        if self._conn is None:  # the connection itself could not be opened
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._reopen = True

    def _commit(self, conn, events, rejections, probe) -> list[AppendResult]:
        conn.execute("BEGIN IMMEDIATE")
        if probe:
            conn.execute(
                "INSERT INTO write_probe (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
                (utc_now(),),
            )
        position, chain, seq = 0, GENESIS, 0
        ids = list({e.id for e in events})
        known: dict[str, tuple[int, bytes]] = {}
        # The head (kind 0), the newest journal row (kind 1) and the events already
        # holding these ids (kind: their id, text), in one statement. It runs inside
        # the write transaction, so another process's appends are always seen.
        marks = ",".join("?" * len(ids))
        for kind, pos, data in conn.execute(
            "SELECT 0, position, chain FROM "
            "(SELECT position, chain FROM events ORDER BY position DESC LIMIT 1) "
            "UNION ALL SELECT 1, max(seq), NULL FROM deliveries"
            + (
                f" UNION ALL SELECT id, position, body FROM events WHERE id IN ({marks})"
                if ids
                else ""
            ),
            ids,
        ):
            if kind == 0:
                position, chain = pos, data
            elif kind == 1:
                seq = pos or 0
            else:
                known[kind] = (pos, body_digest(data))
        now = now_ms()
        # Refused deliveries never wait, so those queued are older than this group's appends.
        head, head_chain = position, chain
        event_rows, leaves, results = [], [], []
        delivery_rows = [_rejection_row(at, rejection) for at, rejection in rejections]
        for event in events:
            digest = body_digest(event.body)
            received_at = encode_time(event.received_at) if event.received_at else now
            scheme = encode_scheme(event.scheme)
            seen = known.get(event.id)
            if seen is None:
                position += 1
                chain = chain_link(chain, event.id, digest)
                known[event.id] = (position, digest)
                leaves.append((position, event.id, event.type, received_at, digest))
                event_rows.append(
                    (
                        position,
                        event.id,
                        event.type,
                        event.created_at,
                        received_at,
                        scheme,
                        chain,
                        event.body,
                    )
                )
                outcome, at, kept = Outcome.STORED, position, None
            elif seen[1] == digest:
                outcome, at, kept = Outcome.DUPLICATE, seen[0], None
            else:
                outcome, at, kept = Outcome.CONFLICT, seen[0], event.body
            results.append(AppendResult(outcome, event.id, at))
            if outcome is Outcome.STORED:  # the rest is in the event's row
                row: tuple = (None, "stored", None, None, None, at, None, None, event.remote_addr)
                delivery_rows.append((*row, None, None))
            else:
                row = (received_at, outcome.value, 200, None, event.id, at, digest)
                delivery_rows.append((*row, len(event.body), event.remote_addr, scheme, kept))
        if event_rows:
            conn.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", event_rows
            )
            # The Merkle tree grows in the same transaction: its rows commit with the
            # events or not at all, so a crash never leaves the two apart.
            frontier = self._frontier
            if frontier is None or self._frontier_head != (head, head_chain):
                frontier = load_frontier(conn, head)
            self._frontier = self._frontier_head = None  # until this transaction commits
            conn.executemany(
                "INSERT INTO tree_hashes (idx, hash) VALUES (?, ?)",
                grow(frontier, leaves),
            )
            folded, due = head // TYPE_FOLD * TYPE_FOLD, position // TYPE_FOLD * TYPE_FOLD
            if due > folded:
                conn.execute(
                    "INSERT INTO type_counts (type, events) SELECT type, count(*) FROM events "
                    "WHERE position > ? AND position <= ? GROUP BY type "
                    "ON CONFLICT(type) DO UPDATE SET events = events + excluded.events",
                    (folded, due),
                )
        if delivery_rows:
            conn.executemany(
                "INSERT INTO deliveries (received_at, outcome, status, reason, event_id, position, "
                "body_sha256, size, remote_addr, scheme, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                delivery_rows,
            )
        # Under the write lock the new rows took seq + 1 ... seq + n.
        folded = seq // DELIVERY_FOLD * DELIVERY_FOLD
        due = (seq + len(delivery_rows)) // DELIVERY_FOLD * DELIVERY_FOLD
        if due > folded:
            conn.execute(
                "INSERT INTO delivery_counts (outcome, deliveries) SELECT outcome, count(*) "
                "FROM deliveries WHERE seq > ? AND seq <= ? GROUP BY outcome "
                "ON CONFLICT(outcome) DO UPDATE SET deliveries = deliveries + excluded.deliveries",
                (folded, due),
            )
        if rejections:
            self._prune_rejections(conn, due)
        conn.execute("COMMIT")
        if event_rows:
            self._frontier, self._frontier_head = frontier, (position, chain)
        return results

    def _prune_rejections(self, conn: sqlite3.Connection, folded: int) -> None:
        """Keep the newest `rejected_keep` rejected rows; the counters lose the folded ones."""
        cut = conn.execute(
            "SELECT seq FROM deliveries WHERE outcome = 'rejected' "
            "ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (self.rejected_keep,),
        ).fetchone()
        if cut is None:
            return
        (gone,) = conn.execute(
            "SELECT count(*) FROM deliveries WHERE outcome = 'rejected' AND seq <= ?",
            (min(cut[0], folded),),
        ).fetchone()
        conn.execute("DELETE FROM deliveries WHERE outcome = 'rejected' AND seq <= ?", (cut[0],))
        if gone:
            conn.execute(
                "UPDATE delivery_counts SET deliveries = deliveries - ? WHERE outcome = 'rejected'",
                (gone,),
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._turn is not None:
            # A helper still blocked in flock keeps the descriptor: closing it under
            # the helper would let it unlock whatever file reuses the number.
            if not self._turn.pending:
                os.close(self._turn.fd)
            self._turn = None


def _rejection_row(at: int, rejection: Rejection) -> tuple:
    return (
        at,
        Outcome.REJECTED.value,
        rejection.status,
        rejection.reason,
        rejection.event_id,
        None,
        rejection.body_sha256,
        rejection.size,
        rejection.remote_addr,
        encode_scheme(rejection.scheme),
        None,
    )
