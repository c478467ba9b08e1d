"""The projections database: a SQLite file beside the log, holding every read model.

Call `open_projections(store, path)` to get a `ProjectionDB`; queries and the
runner take it as their first argument. `default_projections_path("x.db")` is
`"x.projections.db"`. Writes here never touch the log, so ingest never waits on them.

The file belongs to one log: `log_binding` holds the `log_id` of the log it was built
from (the binding is to the log's identity; the chain value at each checkpoint,
below, still tells apart two files that share an identity because one was copied
behind the store's back). Opening the file for another log raises
`ReadModelOfAnotherLog`, unless the caller adopts it (`adopt=True`: emptied, bound to
the new log, rebuilt by the runner). Every read and write transaction checks the
binding, so a file adopted by another log while this process has it open is neither
served nor fed from then on. A file written before bindings existed is adopted by the
log that opens it when every checkpoint's chain value matches that log, else refused.
A damaged file (a page SQLite cannot read) raises `ReadModelCorrupt`.

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

from store import EventStore, sqlite_path, utc_now
from store.sqlite_engine import sqlite3

from .framework import ReadModelCorrupt, ReadModelOfAnotherLog, ReadModelUnavailable
from .lease import rebuild_lock

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


def m002_log_binding(db: Database) -> None:
    # The identity of the log the read models were built from: one row, or none in a
    # file written before bindings existed (see ProjectionDB._bind).
    db.execute(
        "CREATE TABLE log_binding (one INTEGER PRIMARY KEY CHECK (one = 1), "
        "log_id TEXT NOT NULL, bound_at TEXT NOT NULL)"
    )


MIGRATIONS = (m001_meta, m002_log_binding)  # in the order they apply
# Tables of the file itself; every other table is a projection's (dropped on adoption).
_OWN_TABLES = ("projection_meta", "log_binding", "_sqlite_migrations")


def migrate(conn: sqlite3.Connection) -> bool:
    """Apply the pending migrations; False when none was (sqlite-utils is imported only
    when one is pending, and has then set its pragmas on `conn`).

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
        return False
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for step in MIGRATIONS:
        migrations()(step)
    migrations.apply(Database(conn))
    return True


def default_projections_path(location: str | os.PathLike, log_id: str | None = None) -> str:
    """Where the read models of the log at `location` live unless configured otherwise.

    A SQLite log (a path `X.db` or `sqlite:///…/X.db`) keeps them beside its file,
    `X.projections.db`. Any other log (`postgresql://…`) has no file to stand beside:
    its read models are `ikledger-<log_id>.projections.db` in the working directory,
    named by the log's identity, so two logs never share a file whatever folder they
    are used from. Raises ValueError for such a location without `log_id`.
    """
    path = sqlite_path(os.fspath(location))
    if path is not None:
        root, ext = os.path.splitext(path)
        return f"{root}.projections{ext or '.db'}"
    if not log_id:
        raise ValueError("the read models of a log given as a URL are named by its log_id")
    return f"ikledger-{log_id}.projections.db"


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


Version = tuple[int, int]  # (PRAGMA data_version, total_changes) of one connection


def version(conn: sqlite3.Connection) -> Version:
    """Changes when anything is committed to the file: by another connection
    (data_version) or by this one (total_changes). Kept answers are valid while it
    stays (`cache.KeptAnswers`)."""
    return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes


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
# SQLite's sorter (CREATE INDEX, GROUP BY, ORDER BY) keeps sorted runs of at most the
# main database's cache size in memory, spills each to a temporary file and merges
# them: small runs that fit the CPU's caches cost less CPU than one large in-memory
# sort. On the 1M-event log, each built alone: the timeline's two indexes 0.62-0.66 s
# of CPU with 512 KiB against 0.77-1.08 s with 16 MiB; the counts and durations 1.09
# against 1.34 s.
SORT_CACHE_KIB = 512


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
def sorting(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`conn` with the sorter's cache (SORT_CACHE_KIB) for a large sort, then as it was."""
    (before,) = conn.execute("PRAGMA cache_size").fetchone()
    conn.execute(f"PRAGMA cache_size=-{SORT_CACHE_KIB}")
    try:
        yield conn
    finally:
        conn.execute(f"PRAGMA cache_size={int(before)}")


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


_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # and their extended forms


def is_damage(exc: BaseException) -> bool:
    """A SQLite error saying the file holds a page it cannot read (or is no database)."""
    name = getattr(exc, "sqlite_errorname", None) if isinstance(exc, sqlite3.Error) else None
    return name is not None and name.startswith(_DAMAGED)


def damaged(path: str, exc: sqlite3.Error) -> ReadModelCorrupt:
    return ReadModelCorrupt(
        f"the read models in {path} are damaged ({exc}); remove the file (and its -wal "
        "and -shm) and they are rebuilt from the log (`ikledger rebuild`)"
    )


@contextmanager
def unavailable_on_error(what: str, path: str | None = None) -> Iterator[None]:
    """Raise any SQLite error of the block as ReadModelUnavailable (cause kept).

    Damage is ReadModelCorrupt naming the file at `path`, never a short answer.
    """
    try:
        yield
    except sqlite3.Error as exc:
        if path is not None and is_damage(exc):
            raise damaged(path, exc) from exc
        raise ReadModelUnavailable(f"{what}: {exc}") from exc


class ProjectionDB:
    """The projections file plus the log it is derived from; one connection per thread."""

    def __init__(
        self,
        store: EventStore,
        path: str | os.PathLike,
        *,
        timeout: float = 10.0,
        adopt: bool = False,
    ):
        self.store = store
        self.path = os.fspath(path)
        self.timeout = timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.log_id = store.log_id()
        with unavailable_on_error(f"cannot open the read models at {self.path}", self.path):
            setup = connect(self.path, timeout, READER_CACHE_KIB)
            try:
                setup.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes on a new file
                setup.execute("PRAGMA journal_mode=WAL")
                migrated = migrate(setup)
                self._bind(setup, adopt)
            except BaseException:
                setup.close()
                raise
        if migrated:  # sqlite-utils had it: this thread's connection starts afresh
            setup.close()
            return
        # It stays open as this thread's connection: a connection reads the whole schema
        # at its first statement, a good part of a read command's SQL time.
        self._local.conn = setup
        self._local.writer = False
        self._conns.append(setup)

    def _bind(self, conn: sqlite3.Connection, adopt: bool) -> None:
        """Bind a new (or older, matching) file to this log; refuse or adopt another's."""
        row = conn.execute("SELECT log_id FROM log_binding").fetchone()
        if row is not None and row[0] == self.log_id:
            return  # bound to this log (a binding is only ever replaced by an adoption)
        with transaction(conn, "IMMEDIATE"):
            row = conn.execute("SELECT log_id FROM log_binding").fetchone()
            if row is not None and row[0] == self.log_id:
                return
            if row is None:
                reason = self._mismatch(conn)
                if reason is None:  # new, or built from this log before bindings existed
                    conn.execute(
                        "INSERT INTO log_binding (one, log_id, bound_at) VALUES (1, ?, ?)",
                        (self.log_id, utc_now()),
                    )
                    return
            else:
                reason = (
                    f"built from the log {row[0]}, not {self.log_id} ({self.store.display_name})"
                )
            if not adopt:
                raise ReadModelOfAnotherLog(self.path, reason)
        with rebuild_lock(self.path), transaction(conn, "IMMEDIATE"):
            self._empty(conn)
            conn.execute(
                "INSERT OR REPLACE INTO log_binding (one, log_id, bound_at) VALUES (1, ?, ?)",
                (self.log_id, utc_now()),
            )

    def _mismatch(self, conn: sqlite3.Connection) -> str | None:
        """Why a file without a binding was not built from this log; None if it may be."""
        for name, checkpoint, chain in conn.execute(
            "SELECT name, checkpoint, chain FROM projection_meta WHERE checkpoint > 0 ORDER BY name"
        ).fetchall():
            found = self.store.get_positions([checkpoint])
            if not found or chain is None or found[0].chain != chain:
                return (
                    f"it records no log, and {name}'s checkpoint at position {checkpoint} "
                    f"is not in {self.store.display_name}"
                )
        return None

    @staticmethod
    def _empty(conn: sqlite3.Connection) -> None:
        """Drop every projection's tables and meta row, in `conn`'s transaction."""
        marks = ",".join("?" * len(_OWN_TABLES))
        for kind, name in conn.execute(
            f"SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') "
            f"AND name NOT IN ({marks}) AND name NOT LIKE 'sqlite%'",
            _OWN_TABLES,
        ).fetchall():
            conn.execute(f'DROP {"VIEW" if kind == "view" else "TABLE"} IF EXISTS "{name}"')
        conn.execute("DELETE FROM projection_meta")

    def check_bound(self, conn: sqlite3.Connection) -> None:
        """Raise ReadModelOfAnotherLog unless the file is still bound to this log.

        Called inside every transaction (one primary-key read), so that a file
        another process adopted meanwhile is neither served nor fed.
        """
        row = conn.execute("SELECT log_id FROM log_binding").fetchone()
        if row is None or row[0] != self.log_id:
            found = "no log" if row is None else f"the log {row[0]}"
            raise ReadModelOfAnotherLog(
                self.path, f"it was bound to {found} since it was opened for {self.log_id}"
            )

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use with a reader's page cache.

        Raises ReadModelUnavailable once closed or when the file cannot be opened.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise ReadModelUnavailable("the projections database is closed")
            with unavailable_on_error(f"cannot open the read models at {self.path}", self.path):
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
        ReadModelUnavailable (ReadModelCorrupt for a damaged file), so callers need not
        know the read models are SQLite. Raises ReadModelOfAnotherLog when the file
        was adopted by another log since it was opened.
        """
        with (
            unavailable_on_error("cannot read the read models", self.path),
            transaction(self.conn()) as conn,
        ):
            self.check_bound(conn)
            yield conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE), so it never upgrades.

        The thread's connection keeps the writer's large page cache from then on.
        SQLite errors propagate as they are: the engine classifies them (see
        `failures`) before they leave this package. Raises ReadModelOfAnotherLog,
        writing nothing, when the file was adopted by another log since it was opened.
        """
        conn = self.conn()
        if not self._local.writer:
            _cache(conn, WRITER_CACHE_KIB)
            self._local.writer = True
        with transaction(conn, "IMMEDIATE") as conn:
            self.check_bound(conn)
            yield conn

    def quick_check(self, *, max_problems: int = 20) -> str | None:
        """`PRAGMA quick_check` of the file: None when it is sound, else what SQLite found.

        Linear in the file's size; for a start-up after an unclean stop.
        """
        try:
            with unavailable_on_error("cannot check the read models", self.path):
                rows = self.conn().execute(f"PRAGMA quick_check({int(max_problems)})").fetchall()
        except ReadModelCorrupt as exc:
            return str(exc)
        if rows == [("ok",)]:
            return None
        return "; ".join(str(row[0]) for row in rows)

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


def open_projections(
    store: EventStore, path: str | os.PathLike, *, adopt: bool = False
) -> ProjectionDB:
    """Open (creating if needed) the read models of `store` in the SQLite file at `path`.

    The caller chooses the path (`default_projections_path(location, store.log_id())`
    unless configured): the store's contract names no file. A file built from another
    log raises ReadModelOfAnotherLog naming it; with `adopt=True` such a file is
    emptied and bound to `store` instead (the runner then rebuilds every projection).
    A file SQLite cannot read raises ReadModelCorrupt.
    """
    return ProjectionDB(store, path, adopt=adopt)
