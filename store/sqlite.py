"""The embedded SQLite backend of the event log.

One writer thread owns the only write connection and commits in groups: every
append waiting when a transaction starts is made durable by that transaction's
single fsync (WAL, synchronous=FULL). Positions are assigned inside the write
transaction (BEGIN IMMEDIATE), so they are gap-free and in commit order even
when several processes write to the same file. Reads use one connection per
thread and never wait for the writer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Self

from sqlite_utils import Database

from . import migrations
from .contract import (
    GENESIS,
    AppendResult,
    Event,
    NewEvent,
    Outcome,
    Rejection,
    Stats,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    VerifyReport,
    body_digest,
    chain_link,
)
from .encoding import decode_scheme, decode_time, encode_scheme, encode_time, now_ms

REJECTED_KEEP = 10_000
MAX_GROUP = 512  # events per transaction; bounds the time one commit holds the lock
_REJECT_QUEUE_MAX = 10_000
# `type_counts` holds the events of positions up to the last multiple of TYPE_FOLD at or
# below the head, folded in by the group that crosses it; `stats` counts the rest (fewer
# than TYPE_FOLD rows). So most groups write no counter page at all.
TYPE_FOLD = 1024
# Rows are ~750 bytes; a page keeps on average half a row unused, so bigger pages waste
# less (4 KiB: 10%, 8 KiB: 5%) while a group commit still writes few of them.
PAGE_SIZE = 8192  # a flood of refused requests never grows memory past this

_EVENT_COLUMNS = "position, id, type, created_at, received_at, scheme, chain, body"


def utc_now() -> str:
    """Now, as the store writes times: UTC ISO-8601 with milliseconds and Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(row: Sequence) -> Event:
    """An `events` row (in `_EVENT_COLUMNS` order) as the read API's record."""
    position, event_id, type_, created_at, received_at, scheme, chain, body = row
    return Event(
        position,
        event_id,
        type_,
        created_at,
        decode_time(received_at),
        decode_scheme(scheme),
        chain,
        body,
    )


def _connect(path: str, timeout: float) -> sqlite3.Connection:
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


class SQLiteStore:
    """The append-only log in one SQLite file (see the module docstring)."""

    backend = "sqlite"

    def __init__(
        self, path: str | os.PathLike, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP
    ):
        self.path = os.fspath(path)
        self.timeout = timeout
        self.rejected_keep = rejected_keep
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._cond = threading.Condition()
        self._appends: list[_Waiter] = []
        self._rejections: list[tuple] = []
        self._rejections_dropped = 0
        self._closed = False
        self.last_write_error: str | None = None
        self.last_write_error_at: float | None = None
        self._probed_at: float | None = None  # monotonic time of the last write probe
        self._probe_lock = threading.Lock()
        self._reopen = False  # set by a failed transaction: the next one starts afresh
        try:
            setup = _connect(self.path, timeout)
            setup.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a no-op once the file exists
            setup.execute("PRAGMA journal_mode=WAL")
            migrations.apply(Database(setup))
            setup.close()
            self._conn = _connect(self.path, timeout)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="ikledger-writer", daemon=True)
        self._thread.start()

    # -- writing ------------------------------------------------------------

    def append(self, event: NewEvent) -> AppendResult:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append events in order; returns only after they are durable.

        Raises StoreUnavailable when the group they were in could not commit;
        then none of them was stored.
        """
        if not events:
            return []
        waiter = _Waiter(events)
        with self._cond:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._appends.append(waiter)
            self._cond.notify()
        waiter.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.results

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
                waiter = _Waiter((), probe=True)
                with self._cond:
                    if self._closed:
                        raise StoreClosed("the store is closed")
                    self._appends.append(waiter)
                    self._cond.notify()
                waiter.wait()
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
                self._rejections_dropped += 1
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
                self.last_write_error = _describe(exc)
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
            fresh = _connect(self.path, self.timeout)
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
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", event_rows
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

    # -- reading ------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreClosed("the store is closed")
            try:
                conn = _connect(self.path, self.timeout)
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as exc:
                raise StoreUnavailable(_describe(exc)) from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(_describe(exc)) from exc

    def read_batches(
        self,
        after: int = 0,
        *,
        batch_size: int = 1000,
        types: Sequence[str] | None = None,
        until: int | None = None,
    ) -> Iterator[list[Event]]:
        """Events after a position, oldest first, `batch_size` at a time.

        Each batch is its own read, so a long iteration never pins the WAL. Yields
        nothing when there is nothing after `after`.
        """
        where, params = ["position > ?"], [after]
        if until is not None:
            where.append("position <= ?")
            params.append(until)
        if types is not None:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY position LIMIT ?"
        )
        while True:
            rows = self._query(sql, [*params, batch_size])
            if not rows:
                return
            yield [_event(row) for row in rows]
            if len(rows) < batch_size:
                return
            params[0] = rows[-1][0]

    def get(self, event_id: str) -> Event | None:
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def get_positions(self, positions: Sequence[int]) -> list[Event]:
        """The events at these positions, in position order (missing ones skipped)."""
        found: list[Event] = []
        positions = sorted(set(positions))
        for start in range(0, len(positions), 500):
            chunk = positions[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE position IN ({marks}) ORDER BY position",
                chunk,
            )
            found.extend(_event(row) for row in rows)
        return found

    def last_position(self) -> int:
        """The position of the newest event; 0 when the log is empty."""
        rows = self._query("SELECT max(position) FROM events")
        return rows[0][0] or 0

    def deliveries(self, *, event_id: str | None = None, limit: int = 100) -> list[dict]:
        """Journal rows, newest first, optionally for one event id.

        A `stored` row's time, status, event id, size and scheme come from its event.
        """
        sql = (
            "SELECT seq, received_at, outcome, status, reason, event_id, position, size, "
            "remote_addr, scheme FROM journal"
        )
        params: list = []
        if event_id is not None:
            # Every delivery of a stored event carries its position; refused ones may
            # name the id without one. Selecting on the table's own columns first keeps
            # the view's join to the few matching rows.
            sql += (
                " WHERE seq IN (SELECT seq FROM deliveries"
                " WHERE position = (SELECT position FROM events WHERE id = ?)"
                " OR (position IS NULL AND event_id = ?))"
            )
            params += [event_id, event_id]
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        names = ("seq", "received_at", "outcome", "status", "reason", "event_id", "position")
        names += ("size", "remote_addr", "scheme")
        rows = []
        for row in self._query(sql, params):
            item = dict(zip(names, row, strict=True))
            item["received_at"] = decode_time(item["received_at"])
            item["scheme"] = decode_scheme(item["scheme"])
            rows.append(item)
        return rows

    def verify(self, *, batch_size: int = 5000) -> VerifyReport:
        """Recompute the chain from the first event and compare every stored link.

        Names the first position where a row was changed, removed or inserted.
        An empty log verifies.
        """
        expected, chain, count = 1, GENESIS, 0
        sql = f"SELECT position, id, chain, body FROM events WHERE position > ? ORDER BY position LIMIT {batch_size}"
        after = 0
        while True:
            rows = self._query(sql, (after,))
            for position, event_id, stored, body in rows:
                if position != expected:
                    problem = (
                        f"position {expected} is missing (next is {position})"
                        if position > expected
                        else f"position {position} is out of sequence"
                    )
                    return VerifyReport(False, count, expected, problem, chain)
                if not isinstance(body, bytes) or not isinstance(event_id, str):
                    # e.g. `body || x'20'` turns a BLOB into TEXT: tampering, not a crash
                    problem = f"columns of the wrong type at position {position}"
                    return VerifyReport(False, count, position, problem, chain)
                chain = chain_link(chain, event_id, body_digest(body))
                if chain != stored:
                    return VerifyReport(
                        False, count, position, f"chain mismatch at position {position}", chain
                    )
                expected += 1
                count += 1
            if len(rows) < batch_size:
                return VerifyReport(True, count, None, None, chain)
            after = rows[-1][0]

    def stats(self) -> Stats:
        head = self._query("SELECT position, chain FROM events ORDER BY position DESC LIMIT 1")
        last, chain = head[0] if head else (0, GENESIS)
        outcomes = dict(self._query("SELECT outcome, count(*) FROM deliveries GROUP BY outcome"))
        # One statement, so the folded counts and the tail are read from one snapshot.
        types = dict(
            self._query(
                "SELECT type, sum(n) FROM (SELECT type, events AS n FROM type_counts UNION ALL "
                "SELECT type, count(*) FROM events WHERE position > "
                f"(SELECT max(position) / {TYPE_FOLD} * {TYPE_FOLD} FROM events) GROUP BY type) "
                "GROUP BY type ORDER BY type"
            )
        )
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return Stats(last, last, chain, outcomes, types, size)

    def backup(self, path: str | os.PathLike) -> int:
        """Copy the whole database to `path` with SQLite's online backup API.

        The copy is one consistent snapshot even while appends go on; returns the
        number of events it holds. An existing file at `path` is replaced.
        """
        target = os.fspath(path)
        try:
            destination = sqlite3.connect(target, isolation_level=None)
            try:
                self._reader().backup(destination)
                return destination.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                destination.close()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"backup to {target} failed: {_describe(exc)}") from exc

    @property
    def rejections_dropped(self) -> int:
        return self._rejections_dropped

    def close(self) -> None:
        """Finish queued writes, stop the writer and close every connection. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)
