"""How a rebuild loads the log into new tables: by SQL over chunks, or batch by batch.

The SQL path serves projections with `bulk_extract` and `bulk_sql`. The log is cut
into chunks of positions; worker threads (sqlite3 releases the GIL while stepping)
each make one chunk readable as a SQLite relation and parse it with `bulk_extract`
into the chunk's own scratch file. The relation is the store's own when it offers
`sqlite_source` (a SQLite log, attached and read in one deferred transaction, so
ingest never waits); for any other store it is a staging table in the scratch file,
filled from `read_batches` with the same columns. The rebuild's connection attaches
the parsed chunks in position order and appends each with `bulk_sql`, writing only
the projections file. A chunk whose parse raises a poison error is redone batch by
batch through `load` to find the poison event.

Projections without SQL functions are loaded batch by batch through `load`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from store import EventStore
from store.sqlite_engine import sqlite3

from .db import ProjectionDB, transaction
from .failures import Kind, Poison, apply_batch, classify
from .framework import Projection, Tables

SQL_CHUNK = 50_000  # log positions per chunk of a SQL rebuild
EXTRACT_THREADS = 2  # connections parsing chunks while the rebuild's one writes the tables
STAGE_BATCH = 5000

# (scratch connection, after, until) -> a relation of (position, id, type, created_at, body)
Source = Callable[[sqlite3.Connection, int, int], str]
Report = Callable[[int], None]


def source_of(store: EventStore, projection: Projection) -> Source:
    """The store's SQLite relation when it offers one, else a staging table per chunk."""
    if hasattr(store, "sqlite_source"):
        return lambda conn, after, until: store.sqlite_source(conn, "log")
    return partial(_stage, store, projection.handles)


def _stage(
    store: EventStore,
    types: Sequence[str] | None,
    conn: sqlite3.Connection,
    after: int,
    until: int,
) -> str:
    """Copy the events of `types` in (after, until] from the store into `main.staged`."""
    with transaction(conn):
        conn.execute(
            "CREATE TABLE staged (position INTEGER PRIMARY KEY, id TEXT NOT NULL, "
            "type TEXT NOT NULL, created_at TEXT NOT NULL, body BLOB NOT NULL)"
        )
        for batch in store.read_batches(after, batch_size=STAGE_BATCH, types=types, until=until):
            conn.executemany(
                "INSERT INTO staged VALUES (?, ?, ?, ?, ?)",
                [(e.position, e.id, e.type, e.created_at, e.body) for e in batch if e.body],
            )  # a pruned event (empty body) contributes nothing
    return "main.staged"


def _extract_chunk(projection: Projection, source: Source, path: str, after: int, until: int):
    """On a worker thread: parse one chunk of the log into its own scratch file.

    The scratch file has no journal and no fsync: it is thrown away after use.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-8192")
        relation = source(conn, after, until)  # may ATTACH: outside any transaction
        with transaction(conn):
            projection.bulk_extract(conn, relation, "main", after, until)
    finally:
        conn.close()
    return path


def load_in_sql(
    db: ProjectionDB,
    conn: sqlite3.Connection,
    projection: Projection,
    tables: Tables,
    head: int,
    report: Report,
    *,
    chunk: int = SQL_CHUNK,
) -> tuple[int, Poison | None]:
    """Load positions 1..head by SQL, `chunk` positions a task; returns events applied
    and the poison met, if any."""
    # Imported here: a rebuild's modules, not every command's start-up.
    import shutil
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    source = source_of(db.store, projection)
    done, poison = 0, None
    folder = tempfile.mkdtemp(prefix=".rebuild-", dir=os.path.dirname(os.path.abspath(db.path)))
    chunks = iter([(a, min(a + chunk, head)) for a in range(0, head, chunk)])
    pool = ThreadPoolExecutor(EXTRACT_THREADS, thread_name_prefix="rebuild-extract")
    pending: deque = deque()

    def submit() -> None:
        span = next(chunks, None)
        if span is not None:
            path = os.path.join(folder, f"chunk-{span[0]}.db")
            task = pool.submit(_extract_chunk, projection, source, path, *span)
            pending.append((span, task))

    try:
        for _ in range(EXTRACT_THREADS + 1):  # one parsed chunk ready ahead of each worker
            submit()
        while pending and poison is None:
            (after, until), task = pending.popleft()
            try:
                path = task.result()
            except Exception as exc:
                if classify(exc, projection) is not Kind.POISON:
                    raise
                path = None  # find the event to blame the slow way
            submit()
            if path is not None:
                done += _append_chunk(conn, projection, tables, path)
            else:
                with transaction(conn):
                    applied, poison = _load_range(db, conn, projection, tables, after, until)
                done += applied
            report(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(folder, ignore_errors=True)
    return done, poison


def _append_chunk(conn: sqlite3.Connection, projection: Projection, tables: Tables, path: str):
    conn.execute("ATTACH DATABASE ? AS chunk", (path,))
    try:
        with transaction(conn):
            count = projection.bulk_sql(conn, tables, "chunk")
    finally:
        conn.execute("DETACH DATABASE chunk")
    os.remove(path)
    return count


def _load_range(db, conn, projection, tables, after, until, batch_size=STAGE_BATCH, report=None):
    """Fold (after, until] batch by batch with `load`, in the caller's transaction."""
    load, done = projection.load or projection.apply, 0
    for batch in db.store.read_batches(
        after, batch_size=batch_size, types=projection.handles, until=until
    ):
        poison = apply_batch(conn, projection, tables, batch, load)
        if poison is not None:
            return done + sum(1 for e in batch if e.position < poison[0].position), poison
        done += len(batch)
        if report is not None:
            report(done)
    return done, None


def load_batches(
    db: ProjectionDB,
    conn: sqlite3.Connection,
    projection: Projection,
    tables: Tables,
    head: int,
    report: Report,
    *,
    batch_size: int,
    commit_every: int,
) -> tuple[int, Poison | None]:
    """Load positions 1..head through `read_batches` and `load`, one transaction per
    `commit_every` positions: short commits let catch-up in other processes keep the
    old model current.
    """
    done, poison = 0, None
    for after in range(0, head, commit_every):
        until = min(after + commit_every, head)
        with transaction(conn, "IMMEDIATE"):
            applied, poison = _load_range(
                db,
                conn,
                projection,
                tables,
                after,
                until,
                batch_size,
                lambda n, base=done: report(base + n),
            )
        done += applied
        if poison is not None:
            break
    return done, poison
