"""The forwarding state in the SQLite log file (`store/forwarding_sql.py` holds the SQL).

Each thread has its own connection; a writing transaction starts with BEGIN IMMEDIATE,
so it takes the file's write lock at once (waiting up to the store's timeout) rather
than failing on upgrade. Driver errors are translated by `conn.py`, like the log's.

With `synchronous="NORMAL"` (the forwarder's own state: `store.forwarding(durable=False)`)
a commit appends to the WAL without waiting for the disk: it is durable once the log's
writer (synchronous=FULL) next syncs the WAL, which holds every earlier frame, or at
the next checkpoint. A crash of the process loses nothing; a power cut may undo the
latest commits whole (WAL frames are replayed in order, a transaction entire or not
at all).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..contract import StoreClosed
from ..forwarding_sql import Run, SQLForwardingState
from ..sqlite_engine import sqlite3
from .conn import connect, translated


class _Run:
    """`Run` on one connection (inside the caller's transaction)."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def __call__(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self._conn.execute(sql, params).fetchall()

    def many(self, sql: str, rows: Sequence[Sequence]) -> int:
        if not rows:
            return 0
        # sqlite3 sums the rows changed by every execution in `rowcount`.
        return self._conn.executemany(sql, rows).rowcount


class SQLiteForwarding(SQLForwardingState):
    """`ForwardingState` in one SQLite file."""

    def __init__(self, path: str, timeout: float, *, synchronous: str = "FULL", **options):
        super().__init__(**options)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._synchronous = synchronous
        self._path = path
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise StoreClosed("the store is closed")
                with translated("cannot open the forwarding state"):
                    conn = connect(self._path, self._timeout)
                    conn.execute(f"PRAGMA synchronous={self._synchronous}")
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Run]:
        conn = self._connection()
        with translated("forwarding state"):
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _Run(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
