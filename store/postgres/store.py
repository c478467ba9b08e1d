"""The PostgreSQL backend of the event log: one shared log for several receivers.

Writes go through the backend-neutral group writer (`store/writer.py`); each group is
one call of the server-side function `ikledger_append` (`migrations/002_append.sql`),
which serialises appenders on the head row. Reads use a connection pool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

import psycopg

from ..contract import (
    MAX_POSITION,
    Conflict,
    Delivery,
    Erasure,
    Event,
    NewEvent,
    Stats,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    VerifyReport,
    clamp_position,
)
from ..tree_reads import TreeReads
from ..verify import verify_chain
from ..writer import GroupWriter
from ..writing import WritesThroughGroupWriter
from . import erasure, schema
from .append import GroupCommitter
from .connect import Target
from .forwarding import PostgresForwarding
from .listen import Listener

REJECTED_KEEP = 10_000
EVENT_COLUMNS = "position, id, type, created_at, received_at, scheme, chain, body"
_DELIVERY_COLUMNS = (
    "seq, received_at, outcome, status, reason, event_id, position, size, remote_addr, scheme"
)


def check_durable(conn: psycopg.Connection) -> None:
    """Refuse a connection on which a commit would not be durable before it returns."""
    sync, fsync, encoding = conn.execute(
        "SELECT current_setting('synchronous_commit'), current_setting('fsync'), "
        "current_setting('server_encoding')"
    ).fetchone()
    if sync == "off":
        raise StoreError(
            "synchronous_commit is off for this connection, so a commit could return before "
            "it is durable; set it on (ALTER ROLE … SET synchronous_commit = on, or in "
            "postgresql.conf) -- a function-level SET does not cover the commit"
        )
    if fsync == "off":
        raise StoreError("the server runs with fsync off: nothing it commits is durable")
    if encoding != "UTF8":
        raise StoreError(f"the database's encoding is {encoding}; ikledger needs UTF8")


def _remove(database: Path) -> None:
    """Remove a SQLite file and its companions, if there."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)


class PostgresStore(WritesThroughGroupWriter, TreeReads):
    """The append-only log in a PostgreSQL database (see the module docstring)."""

    _mark = "%s"  # the driver's placeholder, for the reads `TreeReads` shares

    def __init__(self, location: str, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP):
        self._target = Target(location, timeout)
        self.display_name = self._target.display_name
        self.timeout = timeout
        self._closed = False
        self._log_id: str | None = None
        with self._target.translated("starting"):
            conn = self._target.connect()
            try:
                check_durable(conn)
                schema.apply(conn)
            finally:
                conn.close()
        self._pool = self._target.pool()
        self._listener = Listener(self._target)
        self._forwarding = PostgresForwarding(self._target, self._pool)
        self._committer = GroupCommitter(self._target, rejected_keep, check_durable)
        self._writer = GroupWriter(self._committer, timeout=timeout, name=self.display_name)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.display_name}>"

    # -- writing: WritesThroughGroupWriter, with append.py's commit ---------------

    # -- reading ------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence = (), *, action: str = "read") -> list[tuple]:
        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            with self._target.translated(action), self._pool.connection() as conn:
                return conn.cursor(binary=True).execute(sql, params).fetchall()
        except StoreCorrupt as exc:
            self._damaged(exc)
            raise

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
        """Events after a position, oldest first, `batch_size` at a time (a read each).

        A `created_at` range is filtered in SQL, over the index `events_created_at`.
        """
        after = clamp_position(after)
        until = None if until is None else clamp_position(until)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position > %s"
            " AND (%s::bigint IS NULL OR position <= %s::bigint)"
            " AND (%s::text[] IS NULL OR type = ANY(%s::text[]))"
            " AND (%s::text IS NULL OR created_at >= %s::text)"
            " AND (%s::text IS NULL OR created_at <= %s::text)"
            " ORDER BY position LIMIT %s"
        )
        names = list(types) if types is not None else None
        since, before = created_since, created_until
        while True:
            rows = self._query(
                sql, (after, until, until, names, names, since, since, before, before, batch_size)
            )
            if not rows:
                return
            yield [Event(*row) for row in rows]
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    def get(self, event_id: str) -> Event | None:
        rows = self._query(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = %s", (event_id,))
        return Event(*rows[0]) if rows else None

    def get_positions(self, positions: Sequence[int]) -> list[Event]:
        wanted = sorted({int(p) for p in positions if 0 < p <= MAX_POSITION})
        if not wanted:
            return []
        rows = self._query(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY(%s::bigint[]) "
            "ORDER BY position",
            (wanted,),
        )
        return [Event(*row) for row in rows]

    def last_position(self) -> int:
        """The head's position: committed appends only, so everything below is readable."""
        return self._query("SELECT position FROM log_head")[0][0]

    def wait(self, after: int, timeout: float) -> int:
        """Block until a position above `after` is readable or `timeout` passes.

        Woken by NOTIFY; re-reads the head at least every `listen.POLL` seconds.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            mark = self._listener.mark()
            last = self.last_position()
            remaining = deadline - time.monotonic()
            if last > after or remaining <= 0:
                return last
            self._listener.sleep(mark, remaining)

    def conflicts(self, event_id: str) -> list[Conflict]:
        """Conflicting redeliveries of `event_id`, oldest first."""
        sql = (
            "SELECT seq, received_at, body FROM deliveries WHERE outcome = 'conflict'"
            " AND position = (SELECT position FROM events WHERE id = %s) ORDER BY seq"
        )
        return [Conflict(*row) for row in self._query(sql, (event_id,))]

    def deliveries(self, *, event_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Journal rows, newest first: all, or every delivery of one event id."""
        if event_id is None:
            sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY seq DESC LIMIT %s"
            params: tuple = (limit,)
        else:
            sql = (
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
                " WHERE position = (SELECT position FROM events WHERE id = %s)"
                " OR (position IS NULL AND event_id = %s) ORDER BY seq DESC LIMIT %s"
            )
            params = (event_id, event_id, limit)
        return [Delivery(*row) for row in self._query(sql, params)]

    def rejections(
        self, since: str | None = None, until: str | None = None, *, limit: int = 100
    ) -> list[Delivery]:
        """Refused deliveries in [since, until), newest first (index `deliveries_rejected_at`)."""
        where, params = _rejected_range(since, until)
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE {where}"
            " ORDER BY received_at DESC, seq DESC LIMIT %s"
        )
        return [Delivery(*row) for row in self._query(sql, (*params, limit))]

    def rejection_counts(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, int]:
        """Refused deliveries in [since, until) by reason, from the index alone."""
        where, params = _rejected_range(since, until)
        sql = (
            f"SELECT coalesce(reason, ''), count(*) FROM deliveries WHERE {where}"
            " GROUP BY 1 ORDER BY 1"
        )
        return {reason: int(n) for reason, n in self._query(sql, params)}

    def type_counts(self) -> dict[str, int]:
        """Events by type, from the counters `ikledger_append` keeps."""
        rows = self._query("SELECT type, events FROM type_counts WHERE events > 0 ORDER BY type")
        return dict(rows)

    def verify(self, *, batch_size: int = 5000) -> VerifyReport:
        """Recompute chain and tree up to the head read first; name the first bad row.

        Also catches rows removed from the end: the head table still names them.
        """
        head_position, head_chain = self._query("SELECT position, chain FROM log_head")[0]
        sql = (
            "SELECT e.position, e.id, e.chain, e.body, e.type, e.received_at, x.body_sha256"
            " FROM events AS e LEFT JOIN erased_bodies AS x ON x.position = e.position"
            " WHERE e.position > %s AND e.position <= %s ORDER BY e.position LIMIT %s"
        )
        tree = "SELECT idx, hash FROM tree_hashes WHERE idx >= %s AND idx < %s ORDER BY idx"
        return verify_chain(
            lambda after, limit: self._query(sql, (after, head_position, limit), action="verify"),
            tree=lambda lo, hi: self._query(tree, (lo, hi), action="verify"),
            head=(head_position, head_chain),
            batch_size=batch_size,
        )

    # -- the Merkle tree (roots and proofs: tree_reads.py) ------------------------

    # -- retention and erasure (erasure.py) ---------------------------------------

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
        with self._target.translated("remove bodies"):
            return erasure.erase_bodies(
                self._pool.connection,
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
        """Keep one checkpoint, append-only; committed on return."""
        if self._closed:
            raise StoreClosed("the store is closed")
        with self._target.translated("add checkpoint"), self._pool.connection() as conn:
            conn.execute("INSERT INTO checkpoints (note) VALUES (%s)", (bytes(text),))

    def latest_checkpoint(self) -> bytes | None:
        """The checkpoint added last, or None."""
        rows = self._query("SELECT note FROM checkpoints ORDER BY seq DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else None

    def stats(self) -> Stats:
        """Head, counters and size: a handful of rows, whatever the log's length."""
        sql = (
            "SELECT h.position, h.chain,"
            " (SELECT array_agg(outcome || '=' || deliveries) FROM delivery_counts),"
            " (SELECT array_agg(type) FROM type_counts WHERE events > 0),"
            " (SELECT array_agg(events) FROM type_counts WHERE events > 0),"
            " pg_total_relation_size('events') + pg_total_relation_size('deliveries')"
            " + pg_total_relation_size('log_head') + pg_total_relation_size('type_counts')"
            " + pg_total_relation_size('tree_hashes')"
            " FROM log_head AS h"
        )
        position, chain, outcomes, types, counts, size = self._query(sql)[0]
        deliveries = {}
        for item in outcomes or ():
            outcome, _, number = item.rpartition("=")
            if int(number):
                deliveries[outcome] = int(number)
        by_type = dict(sorted(zip(types or (), counts or (), strict=True)))
        return Stats(position, position, chain, dict(sorted(deliveries.items())), by_type, size)

    # -- identity and health ------------------------------------------------------

    def log_id(self) -> str:
        """The log's identity, from `log_meta` (read once, on first use: it never changes)."""
        if self._log_id is None:
            self._log_id = self._query("SELECT log_id FROM log_meta")[0][0]
        return self._log_id

    def quick_check(self) -> str | None:
        """Whether the head row and the events agree; None when they do.

        PostgreSQL checks its own pages (a page it cannot read is `StoreCorrupt` on
        any read); what is left to look at cheaply is that the log's head names the
        newest event (one index probe). A disagreement counts as damage.
        """
        position, newest = self._query(
            "SELECT h.position, (SELECT coalesce(max(position), 0) FROM events) FROM log_head AS h",
            action="check",
        )[0]
        if position == newest:
            return None
        found = f"the head names position {position}, the newest event is at {newest}"
        self._damaged(StoreCorrupt(f"{self.display_name} is damaged: {found}"))
        return found

    def last_close_clean(self) -> bool:
        """Always True: a receiver's crash leaves nothing for the server to repair."""
        return True

    # -- forwarding ---------------------------------------------------------------

    def forwarding(self) -> PostgresForwarding:
        """The forwarding state beside the log (store/forwarding.py)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        return self._forwarding

    # -- copies -------------------------------------------------------------------

    def backup(self, path: str | os.PathLike, *, batch_size: int = 1000) -> int:
        """Write one consistent snapshot of the log as a SQLite log file at `path`.

        The snapshot is a REPEATABLE READ READ ONLY transaction; its events go through
        the SQLite store's import path (the same events give the same chain), and the
        copy must verify with the snapshot's head, else StoreCorrupt. The file appears
        whole or not at all (written beside `path`, then renamed). The copy's journal
        holds one `stored` delivery per event, not this log's journal.
        """
        from ..sqlite import SQLiteStore

        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        _remove(partial)
        copy = SQLiteStore(partial, timeout=self.timeout)
        try:
            position, chain = self._snapshot_into(copy, batch_size)
            report = copy.verify()
            if not report.ok or report.events != position or report.head != chain:
                raise StoreCorrupt(
                    f"backup of {self.display_name} does not verify with its head "
                    f"({position} events): {report.problem or 'another head'}"
                )
        except BaseException:
            copy.close()
            _remove(partial)
            raise
        copy.close()
        os.replace(partial, target)
        _remove(partial)
        return position

    def _snapshot_into(self, copy, batch_size: int) -> tuple[int, bytes]:
        """Append one REPEATABLE READ snapshot of the log to `copy`; returns its head."""
        with (
            self._target.translated("backup"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # The copy is written between fetches: the snapshot may stay open that long.
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            position, chain = conn.execute("SELECT position, chain FROM log_head").fetchone()
            cursor = conn.cursor(name="ikledger_backup", binary=True)
            cursor.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE position <= %s ORDER BY position",
                (position,),
            )
            while rows := cursor.fetchmany(batch_size):
                events = (Event(*row) for row in rows)
                copy.append_many(
                    [
                        NewEvent(e.id, e.type, e.created_at, e.body, e.scheme, e.received_at)
                        for e in events
                    ]
                )
            cursor.close()
        return position, chain

    def close(self) -> None:
        """Finish queued writes, stop the writer and the listener, close the pool."""
        if self._closed:
            return
        self._closed = True
        if self._writer.close():  # else a commit is stuck: leave its connection be
            self._committer.close()
        self._listener.close()
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rejected_range(since: str | None, until: str | None) -> tuple[str, list]:
    """The WHERE clause of refusals received in [since, until): times are normalised text."""
    where, params = ["outcome = 'rejected'"], []
    if since is not None:
        where.append("received_at >= %s")
        params.append(since)
    if until is not None:
        where.append("received_at < %s")
        params.append(until)
    return " AND ".join(where), params
