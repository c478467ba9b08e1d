"""The projections database: a SQLite file beside the log, holding every read model.

Call `open_projections(store, path)` to get a `ProjectionDB`; queries and the
runner take it as their first argument. `default_projections_path("x.db")` is
`"x.projections.db"`. Writes here never touch the log, so ingest never waits on them.

Each projection's tables carry a generation suffix (`timeline_events_g3`); the row
of `projection_meta` names the generation being served, its checkpoint (the last
log position applied) and the log's chain value at that position. Readers read that
row and the tables in one read transaction, so a swap is seen whole or not at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from store import EventStore
from store.sqlite_engine import sqlite3

from .framework import ReadModelUnavailable

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATION_SET = "ikledger.projections"  # its name in `_sqlite_migrations`
# Pages of 16 KiB: a rebuild writes (and the next one drops) about 500 MB per million
# log events; a quarter of the pages means a quarter of the page reads, writes and
# freelist entries (measured: the swap's DROP of the old generation 3.3 s → 1.3 s CPU).
PAGE_SIZE = 16384


def m001_meta(db: Database) -> None:
    db["projection_meta"].create(
        {
            "name": str,
            "version": int,
            "generation": int,
            "checkpoint": int,
            "chain": bytes,
            "next_generation": int,
            "updated_at": str,
            "error_position": int,
            "error_event_id": str,
            "error_message": str,
            "error_at": str,
            "error_attempts": int,
        },
        pk="name",
        not_null={"version", "generation", "checkpoint", "next_generation"},
    )


MIGRATIONS = (m001_meta,)  # in the order they apply


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the pending migrations; sqlite-utils is imported only when one is pending.

    The check is plain sqlite3: opening up-to-date read models (every CLI query)
    never pays for importing sqlite-utils.
    """
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,)
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a new file
        rows = []
    if {step.__name__ for step in MIGRATIONS} <= {name for (name,) in rows}:
        return
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for step in MIGRATIONS:
        migrations()(step)
    migrations.apply(Database(conn))


def default_projections_path(log_path: str | os.PathLike) -> str:
    """Where the read models of the log at `log_path` live: `X.db` → `X.projections.db`."""
    root, ext = os.path.splitext(os.fspath(log_path))
    return f"{root}.projections{ext or '.db'}"


@dataclass(frozen=True, slots=True)
class Meta:
    """One projection's row of `projection_meta`."""

    name: str
    version: int
    generation: int
    checkpoint: int
    chain: bytes | None
    next_generation: int
    error_position: int | None
    error_event_id: str | None
    error_message: str | None
    error_at: str | None
    error_attempts: int


_META_COLUMNS = (
    "name, version, generation, checkpoint, chain, next_generation, error_position, "
    "error_event_id, error_message, error_at, coalesce(error_attempts, 0)"
)


def read_meta(conn: sqlite3.Connection, name: str) -> Meta | None:
    row = conn.execute(
        f"SELECT {_META_COLUMNS} FROM projection_meta WHERE name = ?", (name,)
    ).fetchone()
    return Meta(*row) if row else None


# SQLite's page cache is per connection, and the OS's file cache serves a miss cheaply.
# A server has a reader connection per request thread: 64 MiB each was hundreds of MB of
# copies (measured: 657 MB RSS with 8 readers). Writers (catch-up, the rebuild's sorts
# in the temp database) get more, but not 64 MiB: a rebuild of 1,000,000 events peaked
# at 227 MB RSS with it and 88 MB with 16 MiB, no slower (20.1 s vs 18.3 s).
WRITER_CACHE_KIB = 16384
READER_CACHE_KIB = 8192


def connect(
    path: str, timeout: float = 10.0, cache_kib: int = WRITER_CACHE_KIB
) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are explicit (see `transaction`)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    # Read models are rebuildable from the log: NORMAL keeps commits atomic, skips fsyncs.
    conn.execute("PRAGMA synchronous=NORMAL")
    _cache(conn, cache_kib)
    return conn


def _cache(conn: sqlite3.Connection, kib: int) -> None:
    conn.execute(f"PRAGMA cache_size=-{kib}")
    conn.execute(f"PRAGMA temp.cache_size=-{kib}")  # the rebuild sorts in the temp database


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "") -> Iterator[sqlite3.Connection]:
    """BEGIN [mode] … COMMIT, rolled back on any exception. mode: '', 'IMMEDIATE'.

    A COMMIT that fails (SQLITE_BUSY, a deferred constraint) leaves SQLite's
    transaction open; it is rolled back too, so the connection is always left out of
    any transaction and the error propagates.
    """
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):  # the first error is the one to report
                conn.execute("ROLLBACK")
        raise


@contextmanager
def unavailable_on_error(what: str) -> Iterator[None]:
    """Raise any SQLite error of the block as ReadModelUnavailable (cause kept)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise ReadModelUnavailable(f"{what}: {exc}") from exc


class ProjectionDB:
    """The projections file plus the log it is derived from; one connection per thread."""

    def __init__(self, store: EventStore, path: str | os.PathLike, *, timeout: float = 10.0):
        self.store = store
        self.path = os.fspath(path)
        self.timeout = timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with unavailable_on_error(f"cannot open the read models at {self.path}"):
            setup = connect(self.path, timeout)
            try:
                setup.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes on a new file
                setup.execute("PRAGMA journal_mode=WAL")
                migrate(setup)
            finally:
                setup.close()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use with a reader's page cache.

        Raises ReadModelUnavailable once closed or when the file cannot be opened.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise ReadModelUnavailable("the projections database is closed")
            with unavailable_on_error(f"cannot open the read models at {self.path}"):
                conn = connect(self.path, self.timeout, READER_CACHE_KIB)
            self._local.conn = conn
            self._local.writer = False
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot of meta rows and tables.

        Any SQLite error inside it (a locked or unreadable file) is raised as
        ReadModelUnavailable, so callers need not know the read models are SQLite.
        """
        with unavailable_on_error("cannot read the read models"), transaction(self.conn()) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE), so it never upgrades.

        The thread's connection keeps the writer's large page cache from then on.
        SQLite errors propagate as they are: the engine classifies them (see
        `failures`) before they leave this package.
        """
        conn = self.conn()
        if not self._local.writer:
            _cache(conn, WRITER_CACHE_KIB)
            self._local.writer = True
        with transaction(conn, "IMMEDIATE") as conn:
            yield conn

    def close(self) -> None:
        """Close every connection this object opened. Idempotent; the store stays open."""
        with self._lock:
            self._closed = True
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_projections(store: EventStore, path: str | os.PathLike) -> ProjectionDB:
    """Open (creating if needed) the read models of `store` in the SQLite file at `path`.

    The caller chooses the path (the receiver's configuration defaults it beside a
    SQLite log with `default_projections_path`): the store's contract names no file.
    """
    return ProjectionDB(store, path)
