"""The group-commit writer of the SQLite log.

One thread owns the only write connection and commits in groups: every append waiting
when a transaction starts is made durable by that transaction's single fsync (WAL,
synchronous=FULL). Positions are assigned inside the write transaction (BEGIN
IMMEDIATE), so they are gap-free and in commit order even when several processes
write to the same file. Refused deliveries are journalled with the next group and
never waited for.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence

from .contract import (
    GENESIS,
    AppendResult,
    NewEvent,
    Outcome,
    Rejection,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    body_digest,
    chain_link,
)
from .encoding import encode_scheme, encode_time, now_ms, utc_now

MAX_GROUP = 512  # events per transaction; bounds the time one commit holds the lock
_REJECT_QUEUE_MAX = 10_000  # a flood of refused requests never grows memory past this
# `type_counts` holds the events of positions up to the last multiple of TYPE_FOLD at or
# below the head, folded in by the group that crosses it; `stats` counts the rest (fewer
# than TYPE_FOLD rows). So most groups write no counter page at all.
TYPE_FOLD = 1024

EVENT_COLUMNS = "position, id, type, created_at, received_at, scheme, chain, body"


def connect(path: str, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class _Waiter:
    """One caller waiting for its group to commit (a probe has no events).

    The caller blocks on a lock the writer releases: a bare lock costs a fraction of
    a `threading.Event` (no condition, no waiter list) on both sides.
    """

    __slots__ = ("_lock", "error", "events", "probe", "results")

    def __init__(self, events: Sequence[NewEvent], *, probe: bool = False):
        self._lock = threading.Lock()
        self._lock.acquire()
        self.events = events
        self.probe = probe
        self.results: list[AppendResult] = []
        self.error: StoreError | None = None

    def wait(self) -> None:
        """Block until the writer has finished this waiter's group."""
        self._lock.acquire()

    def wake(self) -> None:
        self._lock.release()


class GroupWriter:
    """The writer thread and its connection; `SQLiteStore` hands it every write."""

    def __init__(self, path: str, timeout: float, rejected_keep: int):
        self.path = path
        self.timeout = timeout
        self.rejected_keep = rejected_keep
        self._cond = threading.Condition()
        self._appends: list[_Waiter] = []
        self._rejections: list[tuple] = []
        self.rejections_dropped = 0
        self._closed = False
        self.last_write_error: str | None = None
        self.last_write_error_at: float | None = None
        self._probed_at: float | None = None  # monotonic time of the last write probe
        self._probe_lock = threading.Lock()
        self._reopen = False  # set by a failed transaction: the next one starts afresh
        self._conn = connect(path, timeout)
        self._thread = threading.Thread(target=self._run, name="ikledger-writer", daemon=True)
        self._thread.start()

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append events in order; returns only after they are durable.

        Raises StoreUnavailable when the group they were in could not commit;
        then none of them was stored.
        """
        if not events:
            return []
        waiter = self._submit(_Waiter(events))
        if waiter.error is not None:
            raise waiter.error
        return waiter.results

    def _submit(self, waiter: _Waiter) -> _Waiter:
        """Queue a waiter for the next group and block until that group is done."""
        with self._cond:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._appends.append(waiter)
            self._cond.notify()
        waiter.wait()
        return waiter

    def check_writable(self, *, max_age: float = 1.0) -> str | None:
        """Why appends would fail now, or None; probes with a real write when in doubt.

        The first call, and calls while the last write failed, commit a one-row write
        through the writer (at most one probe per `max_age` seconds; the others reuse
        its answer). So a fault present at start-up is reported before any delivery,
        and a cleared fault is noticed without waiting for a delivery to retry.
        """
        with self._probe_lock:
            stale = self._probed_at is None or (
                self.last_write_error is not None and time.monotonic() - self._probed_at >= max_age
            )
            if stale:
                self._submit(_Waiter((), probe=True))
                self._probed_at = time.monotonic()
        return self.last_write_error

    def record_rejection(self, rejection: Rejection) -> None:
        """Queue a journal row for a refused delivery; dropped (and counted) under flood."""
        row = (
            now_ms(),
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
        with self._cond:
            if self._closed:
                return
            if len(self._rejections) >= _REJECT_QUEUE_MAX:
                self.rejections_dropped += 1
                return
            self._rejections.append(row)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._appends and not self._rejections and not self._closed:
                    self._cond.wait()
                if self._closed and not self._appends and not self._rejections:
                    return
            # Give up the GIL once: callers the last commit released queue their next
            # appends, and this group takes them all (bigger groups, fewer fsyncs).
            time.sleep(0)
            with self._cond:
                group, count = [], 0
                while self._appends and count < MAX_GROUP:
                    waiter = self._appends.pop(0)
                    group.append(waiter)
                    count += len(waiter.events)
                rejections, self._rejections = self._rejections, []
            try:
                self._commit(group, rejections)
            except sqlite3.Error as exc:
                self._rollback()
                self._reopen = True
                self.last_write_error = describe(exc)
                self.last_write_error_at = time.time()
                error = StoreUnavailable(self.last_write_error)
                for waiter in group:
                    waiter.results = []
                    waiter.error = error
            except Exception as exc:  # noqa: BLE001 -- a bug must not strand waiting requests
                self._rollback()
                error = StoreUnavailable(f"internal store error: {exc!r}")
                for waiter in group:
                    waiter.results = []
                    waiter.error = error
            else:
                self.last_write_error = None
            for waiter in group:
                waiter.wake()

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _commit(self, group: list[_Waiter], rejections: list[tuple]) -> None:
        if self._reopen:
            # A connection that failed may stay failed: opened read-only, or after an
            # I/O error. Opened before the old one is closed, which SQLite would
            # otherwise keep open (for the readers' locks) and hand back to it.
            fresh = connect(self.path, self.timeout)
            self._conn.close()
            self._conn = fresh
            self._reopen = False
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        if any(waiter.probe for waiter in group):
            conn.execute(
                "INSERT INTO write_probe (id, checked_at) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at",
                (utc_now(),),
            )
        position, chain = 0, GENESIS
        ids = list({e.id for w in group for e in w.events})
        known: dict[str, tuple[int, bytes]] = {}
        if ids:
            # The head (id NULL) and the events already holding these ids, in one statement.
            # The head is read inside the write transaction, so another process's
            # appends are always seen.
            marks = ",".join("?" * len(ids))
            for event_id, pos, data in conn.execute(
                "SELECT NULL, position, chain FROM "
                "(SELECT position, chain FROM events ORDER BY position DESC LIMIT 1) "
                f"UNION ALL SELECT id, position, body FROM events WHERE id IN ({marks})",
                ids,
            ):
                if event_id is None:
                    position, chain = pos, data
                else:
                    known[event_id] = (pos, body_digest(data))
        now = now_ms()
        # Refused deliveries never wait, so those queued are older than this group's appends.
        head = position
        event_rows, delivery_rows = [], list(rejections)
        for waiter in group:
            for event in waiter.events:
                digest = body_digest(event.body)
                received_at = encode_time(event.received_at) if event.received_at else now
                scheme = encode_scheme(event.scheme)
                seen = known.get(event.id)
                if seen is None:
                    position += 1
                    chain = chain_link(chain, event.id, digest)
                    known[event.id] = (position, digest)
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
                waiter.results.append(AppendResult(outcome, event.id, at))
                if outcome is Outcome.STORED:  # the rest is in the event's row
                    row = (None, "stored", None, None, None, at, None, None, event.remote_addr)
                    delivery_rows.append((*row, None, None))
                else:
                    row = (received_at, outcome.value, 200, None, event.id, at, digest)
                    delivery_rows.append((*row, len(event.body), event.remote_addr, scheme, kept))
        if event_rows:
            conn.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", event_rows
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
        if rejections:
            conn.execute(
                "DELETE FROM deliveries WHERE outcome = 'rejected' AND seq <= ("
                "SELECT seq FROM deliveries WHERE outcome = 'rejected' "
                "ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (self.rejected_keep,),
            )
        conn.execute("COMMIT")

    def close(self) -> None:
        """Commit what is queued, stop the thread and close the connection. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._conn.close()


def describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)
