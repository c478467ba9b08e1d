"""A rebuild's counts and durations, computed on other connections beside its last steps.

At the end of a rebuild the timeline's `finish` has merged every transformation; the
counts and the durations (`timeline_stats_sql.STATS_COUNTS`, `STATS_DURATIONS`) are
then passes over them that share nothing with each other nor with the assets and the
indexes `finish` builds next. So `finish` commits the merged transformations (the
generation is still unserved: only the swap serves it, and a failed rebuild drops it),
and `Aside` runs each half on a connection of its own, in a thread, into a scratch
file of its own beside the projections file, while the rebuild's connection counts
assets and builds indexes; `copy_into` then moves the finished tables in (SQLite
copies the rows of a table of the same shape into an empty one page by page). A
projections file that is not a file (":memory:") has no second connection: `start`
returns None and the caller counts inline.
"""

from __future__ import annotations

import os

from store.sqlite_engine import sqlite3

from .db import SORT_CACHE_KIB, connect, transaction
from .framework import Tables
from .timeline_stats_sql import CREATE_COUNTS, CREATE_DURATIONS, STATS_COUNTS, STATS_DURATIONS

SCHEMA = "counted"  # a scratch file, as attached on the connection that reads or fills it
# Each half: the table it fills (a key of `Tables`' names), its CREATE, its statements.
HALVES = (
    ("durations", CREATE_DURATIONS, STATS_DURATIONS),  # the longer one first
    ("counts", CREATE_COUNTS, STATS_COUNTS),
)


def _file_of(conn: sqlite3.Connection) -> str:
    for _seq, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return path or ""
    return ""


class Aside:
    """STATS_COUNTS and STATS_DURATIONS for `tables`' merged transformations, each run
    on its own connection and thread into its own scratch file."""

    def __init__(self, path: str, tables: Tables, timeout: float) -> None:
        # Imported here: a rebuild's modules, not every command's start-up.
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        self.tables = tables
        self.scratch: dict[str, str] = {}
        folder = os.path.dirname(os.path.abspath(path))
        for table, _create, _statements in HALVES:
            fd, self.scratch[table] = tempfile.mkstemp(
                prefix=f".rebuild-{table}-", suffix=".db", dir=folder
            )
            os.close(fd)
        self._pool = ThreadPoolExecutor(len(HALVES), thread_name_prefix="rebuild-counts")
        self._done = [self._pool.submit(self._count, path, timeout, *half) for half in HALVES]

    def _names(self, schema: str, table: str) -> dict[str, str]:
        t = self.tables
        return {
            "transformations": f"main.{t.transformations}",
            table: f"{schema}.{getattr(t, table)}",
        }

    def _count(
        self, path: str, timeout: float, table: str, create: str, statements: tuple[str, ...]
    ) -> None:
        conn = connect(path, timeout, SORT_CACHE_KIB)  # each half is a sort
        try:
            conn.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (self.scratch[table],))
            # Scratch: a crash loses nothing that is not rebuilt anyway.
            conn.execute(f"PRAGMA {SCHEMA}.journal_mode=OFF")
            conn.execute(f"PRAGMA {SCHEMA}.synchronous=OFF")
            names = self._names(SCHEMA, table)
            with transaction(conn):
                for statement in (create, *statements):
                    conn.execute(statement.format(**names))
        finally:
            conn.close()

    def copy_into(self, conn: sqlite3.Connection) -> None:
        """Wait for both halves, then copy them into `conn`'s empty tables. `conn` must be
        outside any transaction (ATTACH is not allowed in one); it is left outside."""
        for done in self._done:
            done.result()
        for table, _create, _statements in HALVES:
            conn.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (self.scratch[table],))
            try:
                into, made = self._names("main", table)[table], self._names(SCHEMA, table)[table]
                with transaction(conn, "IMMEDIATE"):
                    conn.execute(f"INSERT INTO {into} SELECT * FROM {made}")
            finally:
                conn.execute(f"DETACH DATABASE {SCHEMA}")

    def close(self) -> None:
        """Wait for the threads (they may still be reading) and remove the scratch files."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for scratch in self.scratch.values():
            for leftover in (scratch, scratch + "-journal"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass


def start(conn: sqlite3.Connection, tables: Tables, timeout: float = 10.0) -> Aside | None:
    """Commit `conn`'s transaction (the merged transformations) and start counting them
    on other connections; None (nothing committed) when `conn` has no file."""
    path = _file_of(conn)
    if not path:
        return None
    conn.execute("COMMIT")
    return Aside(path, tables, timeout)
