"""The embedded SQLite backend of the event log.

Writes go through the backend-neutral group-commit writer (`writer.py`), which hands
each group to `SQLiteCommit` (`commit.py`). Reads use one connection per thread
and never wait for the writer. Every driver error is translated in `conn.py`; a
corrupt page met by any read is `StoreCorrupt` naming the file, after which appends
are refused (`writing.WritesThroughGroupWriter`). Whether the last users closed the
file cleanly is kept by a marker file beside it (`session.py`). The delivery
journal's reads are in `journal.py` and the copies (`sqlite_source`, `backup`) in
`copies.py`, parts of `SQLiteStore` as the tree's reads are (`store/tree_reads.py`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self

from ..contract import (
    GENESIS,
    MAX_POSITION,
    AppendResult,
    Erasure,
    Event,
    Stats,
    StoreClosed,
    StoreCorrupt,
    VerifyReport,
    clamp_position,
)
from ..encoding import now_ms, utc_now
from ..lazylog import lazy_logger
from ..sqlite_engine import sqlite3
from ..tree_reads import TreeReads
from ..verify import verify_chain
from ..writer import REJECTED_KEEP, GroupWriter
from ..writing import WritesThroughGroupWriter
from . import erasure, migrations
from .commit import EVENT_COLUMNS, SQLiteCommit
from .conn import connect, translate, translated
from .copies import Copies
from .journal import JournalReads
from .migrations import CREATED_BLOCK, TYPE_FOLD
from .rows import (
    DELIVERY_COUNTS,
    TYPE_COUNTS,
    event,
)
from .session import OpenMarker

if TYPE_CHECKING:
    from .forwarding import SQLiteForwarding

log = lazy_logger("ikledger.store")

# Rows are ~750 bytes; a page keeps on average half a row unused, so bigger pages waste
# less (4 KiB: 10%, 8 KiB: 5%) while a group commit still writes few of them.
PAGE_SIZE = 8192
# `wait` wakes at once on this process's commits; another process's are seen by polling.
WAIT_POLL = 0.05

__all__ = ["REJECTED_KEEP", "TYPE_FOLD", "SQLiteStore", "utc_now"]


class SQLiteStore(WritesThroughGroupWriter, TreeReads, JournalReads, Copies):
    """The append-only log in one SQLite file (see the module docstring)."""

    _mark = "?"  # the driver's placeholder, for the reads `TreeReads` shares

    def __init__(
        self, path: str | os.PathLike, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP
    ):
        self.path = os.fspath(path)  # store-internal: nothing above `store/` reads it
        self.display_name = "sqlite://" + os.path.abspath(self.path)
        self.timeout = timeout
        self.rejected_keep = rejected_keep
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Queries running now; `close` waits for them (notified when none is left).
        self._active = 0
        self._idle = threading.Condition(self._readers_lock)
        self._closed = False
        self._appended = threading.Condition()  # notified after each commit that appends
        self._commits = 0
        self._log_id: str | None = None
        # Taken before the first connection, so that it judges the previous users only.
        self._marker = OpenMarker(self.path)
        try:
            self._open(timeout, rejected_keep)
        except BaseException:
            self._marker.release()
            raise
        self._writer = GroupWriter(
            self._commit, timeout=timeout, name="ikledger-writer", turn=self._committer.turn
        )

    def _open(self, timeout: float, rejected_keep: int) -> None:

        self._forwarding: dict[bool, SQLiteForwarding] = {}  # by durable
        with translated(f"cannot open {self.display_name}"):
            setup = connect(self.path, timeout)
            try:
                setup.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a no-op once the file exists
                setup.execute("PRAGMA journal_mode=WAL")
                current = not migrations.pending(setup)
                if current:
                    setup.execute("PRAGMA query_only=ON")
                else:
                    from sqlite_utils import Database

                    migrations.apply(Database(setup))
            except BaseException:
                setup.close()
                raise
            if current:
                # It stays open as this thread's reader: a connection reads the whole
                # schema at its first statement, a good part of a read command's SQL time.
                self._local.conn = setup
                self._readers.append(setup)
            else:  # sqlite-utils had it; readers start afresh
                setup.close()
            # The lock wait gets half the time an append may take, so that a locked
            # file is reported as locked rather than as a timeout of the whole append.
            self._committer = SQLiteCommit(
                self.path, busy_timeout=timeout / 2, rejected_keep=rejected_keep
            )

    # -- writing (see writer.py) -------------------------------------------

    def _commit(self, events, rejections, probe) -> list[AppendResult]:
        results = self._committer(events, rejections, probe)
        if events:
            with self._appended:
                self._commits += 1
                self._appended.notify_all()
        return results

    # -- reading (the delivery journal's: journal.py) ------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreClosed("the store is closed")
            with translated(f"cannot open {self.display_name}"):
                conn = connect(self.path, self.timeout)
                conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _in_use(self) -> Iterator[sqlite3.Connection]:
        """This thread's reader, counted as in use: `close` waits before closing it."""
        with self._idle:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._active += 1
        try:
            yield self._reader()
        finally:
            with self._idle:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            with self._in_use() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if self._closed:
                raise StoreClosed("the store is closed") from exc
            error = translate(exc)
            if isinstance(error, StoreCorrupt):
                raise self._damaged(
                    StoreCorrupt(f"{self.display_name} is damaged: {error}")
                ) from exc
            raise error from exc

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Run several reads in one read transaction, so they see one state of the log."""
        self._query("BEGIN")
        try:
            yield
        finally:
            self._query("COMMIT")

    def read_batches(
        self,
        after: int = 0,
        *,
        batch_size: int = 1000,
        types: Sequence[str] | None = None,
        until: int | None = None,
        created_since: str | None = None,
        created_until: str | None = None,
    ) -> Iterator[list[Event]]:
        """Events after a position, oldest first, `batch_size` at a time.

        Each batch is its own read, so a long iteration never pins the WAL. Yields
        nothing when there is nothing after `after`. With a `created_at` range, only the
        blocks of positions whose `created_at` span overlaps it are read
        (`created_blocks`, migration m014), then the matching events whole.
        """
        after = clamp_position(after)
        until = None if until is None else clamp_position(until)
        if created_since is not None or created_until is not None:
            yield from self._read_created(
                after, until, types, created_since, created_until, batch_size
            )
            return
        where = ["position > ?"]
        params: list[object] = [after]
        if until is not None:
            where.append("position <= ?")
            params.append(until)
        if types is not None:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY position LIMIT ?"
        )
        while True:
            rows = self._query(sql, [*params, batch_size])
            if not rows:
                return
            yield [event(row) for row in rows]
            if len(rows) < batch_size:
                return
            params[0] = rows[-1][0]

    def _read_created(
        self,
        after: int,
        until: int | None,
        types: Sequence[str] | None,
        since: str | None,
        before: str | None,
        batch_size: int,
    ) -> Iterator[list[Event]]:
        """`read_batches` of a `created_at` range: block by block, then the events."""
        spans = ["block >= ?"]
        params: list[object] = [after // CREATED_BLOCK]
        if since is not None:
            spans.append("last_created >= ?")
            params.append(since)
        if before is not None:
            spans.append("first_created <= ?")
            params.append(before)
        with self._snapshot():  # the blocks' spans as of the head read with them
            head = self.last_position()
            blocks = self._query(
                f"SELECT block FROM created_blocks WHERE {' AND '.join(spans)} ORDER BY block",
                params,
            )
        ranges: list[list[int]] = []
        for (block,) in blocks:
            if ranges and ranges[-1][1] == block * CREATED_BLOCK:
                ranges[-1][1] += CREATED_BLOCK
            else:
                ranges.append([block * CREATED_BLOCK, (block + 1) * CREATED_BLOCK])
        if ranges:
            ranges[-1][1] = min(ranges[-1][1], head)
        ranges.append([head, MAX_POSITION])  # appended since the spans were read: all
        where = ["position > ?", "position <= ?"]
        filters: list[object] = []
        if types is not None:
            where.append(f"type IN ({','.join('?' * len(types))})")
            filters.extend(types)
        if since is not None:
            where.append("created_at >= ?")
            filters.append(since)
        if before is not None:
            where.append("created_at <= ?")
            filters.append(before)
        sql = f"SELECT position FROM events WHERE {' AND '.join(where)} ORDER BY position LIMIT ?"
        last = MAX_POSITION if until is None else until
        found: list[int] = []
        for low, high in ranges:
            low, high = max(low, after), min(high, last)
            while low < high:
                wanted = batch_size - len(found)
                rows = self._query(sql, [low, high, *filters, wanted])
                found.extend(row[0] for row in rows)
                if len(found) == batch_size:
                    yield self.get_positions(found)
                    found = []
                if len(rows) < wanted:
                    break
                low = rows[-1][0]
        if found:
            yield self.get_positions(found)

    def get(self, event_id: str) -> Event | None:
        rows = self._query(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        return event(rows[0]) if rows else None

    def get_positions(self, positions: Sequence[int]) -> list[Event]:
        """The events at these positions, in position order (missing ones skipped)."""
        found: list[Event] = []
        positions = sorted({p for p in positions if 0 < p <= MAX_POSITION})
        for start in range(0, len(positions), 500):
            chunk = positions[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE position IN ({marks}) ORDER BY position",
                chunk,
            )
            found.extend(event(row) for row in rows)
        return found

    def last_position(self) -> int:
        """The position of the newest event; 0 when the log is empty."""
        rows = self._query("SELECT max(position) FROM events")
        return rows[0][0] or 0

    def wait(self, after: int, timeout: float) -> int:
        """Block until a position above `after` is readable or `timeout` passes.

        Wakes at once when this process appends; another process's appends are seen
        by polling the head every WAIT_POLL seconds. Returns `last_position()`.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._appended:
                seen = self._commits
            position = self.last_position()
            remaining = deadline - time.monotonic()
            if position > after or remaining <= 0:
                return position
            with self._appended:
                if self._commits == seen:  # no commit since the head was read
                    self._appended.wait(min(remaining, WAIT_POLL))

    def type_counts(self) -> dict[str, int]:
        """Events by type: the folded counters plus fewer than TYPE_FOLD newest rows."""
        return dict(self._query(TYPE_COUNTS))

    def verify(self, *, batch_size: int = 5000) -> VerifyReport:
        """Recompute the chain and the tree from the first event and compare every stored hash.

        Names the first position where a row was changed, removed or inserted.
        An empty log verifies. An intact log is checked in bulk (`bulk_verify.py`); the
        row-by-row check runs only when that finds something, to name it.
        """
        # Imported here: it loads hashlib (OpenSSL), which the read commands never need.
        from .bulk_verify import bulk_verify

        report = bulk_verify(self._query, path=self.path, timeout=self.timeout)
        if report is not None:
            return report
        sql = (
            "SELECT e.position, e.id, e.chain, e.body, e.type, e.received_at, x.body_sha256 "
            "FROM events AS e LEFT JOIN erased_bodies AS x ON x.position = e.position "
            "WHERE e.position > ? ORDER BY e.position LIMIT ?"
        )
        tree = "SELECT idx, hash FROM tree_hashes WHERE idx >= ? AND idx < ? ORDER BY idx"
        return verify_chain(
            lambda after, limit: self._query(sql, (after, limit)),
            tree=lambda lo, hi: self._query(tree, (lo, hi)),
            batch_size=batch_size,
        )

    # -- the Merkle tree (roots and proofs: tree_reads.py) ----------------------

    # -- retention and erasure (erasure.py) -------------------------------------

    def erase_bodies(
        self,
        kind: str,
        reason: str,
        *,
        position: int | None = None,
        received_before: str | None = None,
    ) -> int:
        """Remove bodies with their records; see `EventStore.erase_bodies`."""
        if self._closed:
            raise StoreClosed("the store is closed")
        return erasure.erase_bodies(
            self.path,
            self.timeout,
            kind,
            reason,
            position=position,
            received_before=received_before,
        )

    def erasure(self, position: int) -> Erasure | None:
        """The recorded removal of the body at `position`, or None."""
        rows = self._query(erasure.ERASURE_SQL, (clamp_position(position),))
        return erasure.erasure_row(rows[0]) if rows else None

    def add_checkpoint(self, text: bytes) -> None:
        """Keep one checkpoint, append-only; durable on return (its own short transaction)."""
        with translated(f"cannot add a checkpoint to {self.display_name}"):
            conn = connect(self.path, self.timeout)
            try:
                conn.execute(
                    "INSERT INTO checkpoints (added_at, note) VALUES (?, ?)",
                    (now_ms(), bytes(text)),
                )
            finally:
                conn.close()

    def latest_checkpoint(self) -> bytes | None:
        """The checkpoint added last, or None."""
        rows = self._query("SELECT note FROM checkpoints ORDER BY seq DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else None

    def stats(self) -> Stats:
        """Head, counts by type and by outcome from the folded counters; one snapshot."""
        with self._snapshot():
            head = self._query("SELECT position, chain FROM events ORDER BY position DESC LIMIT 1")
            types = dict(self._query(TYPE_COUNTS))
            outcomes = dict(self._query(DELIVERY_COUNTS))
        last, chain = head[0] if head else (0, GENESIS)
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return Stats(last, last, chain, outcomes, types, size)

    # -- identity and health ------------------------------------------------

    def log_id(self) -> str:
        """The log's identity, from `log_meta` (read once: it never changes)."""
        if self._log_id is None:
            self._log_id = self._query("SELECT value FROM log_meta WHERE key = 'log_id'")[0][0]
        return self._log_id

    def quick_check(self, *, max_problems: int = 20) -> str | None:
        """`PRAGMA quick_check` of the file: None when it is sound, else what SQLite found.

        Linear in the file's size (about a second per GB on a warm cache). Damage found
        (or a file SQLite cannot read at all) makes later appends raise StoreCorrupt.
        """
        try:
            rows = self._query(f"PRAGMA quick_check({int(max_problems)})")
        except StoreCorrupt as exc:
            return str(exc)
        if rows == [("ok",)]:
            return None
        found = "; ".join(str(row[0]) for row in rows)
        self._damaged(StoreCorrupt(f"{self.display_name} is damaged: {found}"))
        return found

    def last_close_clean(self) -> bool:
        """False when a process that had the file open ended without closing it."""
        return self._marker.clean

    # -- forwarding ---------------------------------------------------------

    def forwarding(self, *, durable: bool = True) -> SQLiteForwarding:
        """The forwarding state beside the log (store/forwarding.py); one per store and
        `durable` (False: `synchronous=NORMAL`, see the contract)."""
        with self._readers_lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            if durable not in self._forwarding:
                from .forwarding import SQLiteForwarding  # the read commands never load it

                self._forwarding[durable] = SQLiteForwarding(
                    self.path, self.timeout, synchronous="FULL" if durable else "NORMAL"
                )
            return self._forwarding[durable]

    def close(self) -> None:
        """Finish queued writes, stop the writer and close every connection. Idempotent.

        Reads that start from now on raise StoreClosed; reads running on other threads
        are waited for (up to the busy timeout), then interrupted (they raise
        StoreClosed), so no connection is closed under a query. Never hangs: a stuck
        commit, or a read that ignores the interrupt, is given a bounded time, then
        left to its thread with its connection open.
        """
        with self._idle:
            if self._closed:
                return
            self._closed = True
        clean = self._writer.close()
        if clean:
            self._committer.close()
        with self._idle:
            if not self._idle.wait_for(lambda: not self._active, self.timeout):
                for conn in self._readers:
                    conn.interrupt()  # safe from any thread; the query raises
                self._idle.wait_for(lambda: not self._active, self.timeout)
            for forwarding in self._forwarding.values():
                forwarding.close()
            if self._active:
                log.warning("%d reads did not stop; their connections stay open", self._active)
            else:
                for conn in self._readers:
                    conn.close()
            self._readers.clear()
        if clean and self._damage is None:
            self._marker.release()
        else:  # a commit left running on its thread, or damage seen: the next user checks
            self._marker.abandon()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
