"""The SQLite store's copies: its events attached to another connection, and backups.

`Copies` is a part of `SQLiteStore` (`store.py`), which supplies `path`,
`display_name`, `_in_use()` (this thread's reader) and `_damaged(exc)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager

from ..contract import StoreCorrupt, StoreError, new_log_id
from ..sqlite_engine import sqlite3
from .conn import translated


class Copies:
    """`sqlite_source` and `backup` of the contract."""

    # the store's
    path: str
    display_name: str
    _in_use: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _damaged: Callable[[StoreCorrupt], StoreCorrupt]

    def sqlite_source(self, conn: sqlite3.Connection, schema: str) -> str:
        """ATTACH the log file read-only to `conn` as `schema`; returns a TEMP view of it.

        The view `temp."<schema>_events"` has the columns position, id, type,
        created_at, body, of the events that still have their body (a pruned or erased
        event contributes nothing to the read models). Call it outside a transaction of
        `conn`; calling it again on the same connection reuses both.
        """
        if not schema.isidentifier():
            raise StoreError(f"not a schema name: {schema!r}")
        location = os.path.abspath(self.path)
        view = f"{schema}_events"
        with translated(f"cannot attach {self.display_name}"):
            attached = {name: file for _, name, file in conn.execute("PRAGMA database_list")}
            if schema not in attached:
                from urllib.parse import quote  # the read commands never load it

                uri = f"file:{quote(location)}?mode=ro"
                conn.execute(f'ATTACH DATABASE ? AS "{schema}"', (uri,))
                attached[schema] = location
            if attached[schema] != location:
                raise StoreError(f"schema {schema!r} is attached to another file")
            conn.execute(
                f'CREATE TEMP VIEW IF NOT EXISTS "{view}" AS '
                f'SELECT position, id, type, created_at, body FROM "{schema}".events '
                "WHERE length(body) > 0"  # a pruned or erased event has nothing to read
            )
        return f'temp."{view}"'

    def backup(self, path: str | os.PathLike) -> int:
        """Copy the whole database to `path` with SQLite's online backup API.

        The copy is one consistent snapshot even while appends go on; returns the
        number of events it holds. An existing file at `path` is replaced. The copy is
        another log: it is given a new `log_id`, so read models of this log are never
        taken for the copy's. The backup API copies pages as they are, so the copy is
        checked (`PRAGMA quick_check`): damage raises StoreCorrupt, and that copy is
        not one to keep.
        """
        target = os.fspath(path)
        with translated(f"backup to {target} failed"):
            destination = sqlite3.connect(target, isolation_level=None)
            try:
                with self._in_use() as source:
                    source.backup(destination)
                found = destination.execute("PRAGMA quick_check(20)").fetchall()
                if found != [("ok",)]:
                    problems = "; ".join(str(row[0]) for row in found)
                    raise self._damaged(StoreCorrupt(f"{self.display_name} is damaged: {problems}"))
                destination.execute(
                    "UPDATE log_meta SET value = ? WHERE key = 'log_id'", (new_log_id(),)
                )
                return destination.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                destination.close()
