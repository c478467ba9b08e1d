"""The forwarding state in the PostgreSQL log's database (`store/forwarding_sql.py` holds the SQL).

The shared statements' `?` placeholders become psycopg's `%s`; each transaction takes
a connection from the store's pool; driver errors are translated by the store's
`Target`, like every other of its errors. Leases expire by the server's clock, so
receivers on several machines agree on them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
import psycopg_pool

from ..forwarding_sql import Run, SQLForwardingState
from .connect import Target

NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def _dialect(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class _Run:
    """`Run` on one cursor (inside the caller's transaction)."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor

    def __call__(self, sql: str, params: Sequence = ()) -> list[tuple]:
        self._cursor.execute(_dialect(sql), params)
        return self._cursor.fetchall() if self._cursor.description else []

    def many(self, sql: str, rows: Sequence[Sequence]) -> int:
        if not rows:
            return 0
        # psycopg sums the rows changed by every execution in `rowcount` (pipelined).
        self._cursor.executemany(_dialect(sql), rows)
        return self._cursor.rowcount


class PostgresForwarding(SQLForwardingState):
    """`ForwardingState` in a PostgreSQL database."""

    now_ms_sql = NOW_MS
    lock_rows_sql = " FOR UPDATE"

    def __init__(self, target: Target, pool: psycopg_pool.ConnectionPool, **options):
        super().__init__(**options)
        self._target = target
        self._pool = pool

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Run]:
        with (
            self._target.translated("forwarding state"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            yield _Run(conn.cursor(binary=True))
