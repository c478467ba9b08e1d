"""Checkpointed catch-up and atomic rebuild of one projection.

- `ensure(db, projection)`: create the projection's meta row and first tables; say why
  a rebuild is due (code version changed, log replaced), or None.
- `catch_up(db, projection)`: apply the log after the checkpoint. Each batch and the
  new checkpoint commit in one transaction; events of other types still advance it.
  On an event `apply` cannot fold, everything before it is committed, the checkpoint
  stops just before it, the error is recorded in meta and `PoisonEvent` is raised.
- `rebuild(db, projection, progress=)`: replay the whole log into a new generation of
  tables, then switch the meta row to it and drop the old one in one transaction.

Several processes may run catch-up at once: a writer re-reads the meta row inside its
write transaction and gives up (retrying later) if someone else moved it meanwhile,
so no event is applied twice. Rebuilds of one projection must not run concurrently.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from store import Event, StoreError, utc_now

from .db import Meta, ProjectionDB, read_meta, transaction
from .framework import Projection, ProjectionError

TRANSIENT = (sqlite3.OperationalError, StoreError)


class PoisonEvent(ProjectionError):
    """A projection could not apply the event at `position`; it stopped just before it."""

    def __init__(self, name: str, event: Event, cause: BaseException):
        super().__init__(f"{name}: cannot apply event {event.id} at {event.position}: {cause!r}")
        self.position = event.position
        self.event_id = event.id
        self.cause = cause


class _Moved(Exception):
    """Another writer moved the meta row while we were reading the log."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a rebuild is: `done` of about `total` events, `rate` events/s, `eta` s."""

    projection: str
    phase: str  # "loading", "finishing", "swapping", "done"
    done: int
    total: int
    rate: float
    eta: float | None


def _create_meta(conn: sqlite3.Connection, projection: Projection) -> Meta:
    projection.setup(conn, projection.tables(1))
    conn.execute(
        "INSERT INTO projection_meta (name, version, generation, checkpoint, chain, "
        "next_generation, updated_at, error_attempts) VALUES (?, ?, 1, 0, NULL, 2, ?, 0)",
        (projection.name, projection.version, utc_now()),
    )
    return read_meta(conn, projection.name)


def ensure(db: ProjectionDB, projection: Projection) -> str | None:
    """Make sure the projection exists; return why it must be rebuilt, or None."""
    with db.write() as conn:
        meta = read_meta(conn, projection.name) or _create_meta(conn, projection)
    if meta.version != projection.version:
        return f"code version {projection.version} differs from tables' {meta.version}"
    if meta.checkpoint > 0:
        found = db.store.get_positions([meta.checkpoint])
        if not found or found[0].chain != meta.chain:
            return f"the log at position {meta.checkpoint} is not the one projected"
    return None


def _lookahead(batches: Iterator[list[Event]]) -> Iterator[tuple[list[Event], bool]]:
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        yield batch, following is None
        batch = following


def _chain_at(db: ProjectionDB, position: int) -> bytes | None:
    if position <= 0:
        return None
    found = db.store.get_positions([position])
    return found[0].chain if found else None


def _set_checkpoint(
    conn: sqlite3.Connection, name: str, position: int, chain: bytes | None, clear: bool = True
):
    conn.execute(
        "UPDATE projection_meta SET checkpoint = ?, chain = ?, updated_at = ? WHERE name = ?",
        (position, chain, utc_now(), name),
    )
    if clear:
        conn.execute(
            "UPDATE projection_meta SET error_position = NULL, error_event_id = NULL, "
            "error_message = NULL, error_at = NULL, error_attempts = 0 WHERE name = ?",
            (name,),
        )


def _record_error(conn: sqlite3.Connection, name: str, event: Event | None, message: str):
    """Note an error; attempts count consecutive failures at the same position."""
    position = event.position if event else None
    conn.execute(
        "UPDATE projection_meta SET error_attempts = CASE WHEN error_position IS ? "
        "THEN coalesce(error_attempts, 0) + 1 ELSE 1 END, error_position = ?, "
        "error_event_id = ?, error_message = ?, error_at = ? WHERE name = ?",
        (position, position, event.id if event else None, message, utc_now(), name),
    )


def record_error(db: ProjectionDB, name: str, message: str) -> None:
    """Note a transient failure (locked database, unavailable log) in the meta row."""
    with db.write() as conn:
        _record_error(conn, name, None, message)


def _apply_until_poison(
    conn: sqlite3.Connection, tables, events: Sequence[Event], apply
) -> tuple[Event, BaseException] | None:
    """Apply events one by one under savepoints; stop at the first that raises."""
    for event in events:
        conn.execute("SAVEPOINT one")
        try:
            apply(conn, tables, [event])
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of apply marks the event poison
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            return event, exc
        conn.execute("RELEASE one")
    return None


def _apply_batch(conn, tables, batch: Sequence[Event], apply):
    """Apply a batch under a savepoint; on a poison event keep the prefix before it."""
    conn.execute("SAVEPOINT batch")
    try:
        apply(conn, tables, batch)
    except TRANSIENT:
        raise
    except Exception:  # noqa: BLE001 - find the event to blame, one by one
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        return _apply_until_poison(conn, tables, batch, apply)
    conn.execute("RELEASE batch")
    return None


def catch_up(db: ProjectionDB, projection: Projection, *, batch_size: int = 2000) -> int:
    """Apply every event after the checkpoint up to the log's head now; returns how many.

    Raises PoisonEvent (after committing everything before it) or a transient error.
    """
    store, name = db.store, projection.name
    meta = read_meta(db.conn(), name)
    head = store.last_position()
    if head <= meta.checkpoint:
        return 0
    applied = 0
    batches = store.read_batches(
        meta.checkpoint, batch_size=batch_size, types=projection.handles, until=head
    )
    for batch, last in _with_tail(_lookahead(batches)):
        tables = projection.tables(meta.generation)
        with db.write() as conn:
            now = read_meta(conn, name)
            if (now.generation, now.checkpoint) != (meta.generation, meta.checkpoint):
                raise _Moved
            poison = _apply_batch(conn, tables, batch, projection.apply) if batch else None
            if poison is not None:
                # Commit what came before the poison, with the error, then stop.
                event, exc = poison
                _set_checkpoint(
                    conn, name, event.position - 1, _chain_at(db, event.position - 1), False
                )
                _record_error(conn, name, event, f"{type(exc).__name__}: {exc}")
            else:
                position = head if last else batch[-1].position
                chain = batch[-1].chain if batch and batch[-1].position == position else None
                _set_checkpoint(conn, name, position, chain or _chain_at(db, position))
        if poison is not None:
            raise PoisonEvent(name, event, exc)
        applied += len(batch)
        meta = read_meta(db.conn(), name)
    return applied


def _with_tail(steps: Iterator[tuple[list[Event], bool]]):
    """Like `steps`, but an empty last batch when nothing was read, to move the checkpoint."""
    seen = False
    for step in steps:
        seen = True
        yield step
    if not seen:
        yield [], True


def catch_up_safely(db: ProjectionDB, projection: Projection, *, batch_size: int = 2000) -> int:
    """`catch_up`, retrying when another process moved the checkpoint under us."""
    for _ in range(5):
        try:
            return catch_up(db, projection, batch_size=batch_size)
        except _Moved:
            continue
    return 0


_GEN = re.compile(r"_g(\d+)$")


def _generations(conn: sqlite3.Connection, name: str) -> set[int]:
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
        (len(name) + 1, name + "_"),
    ).fetchall()
    return {int(m.group(1)) for (n,) in names if (m := _GEN.search(n))}


def _drop_other_generations(conn, projection: Projection, keep: set[int]) -> None:
    for generation in _generations(conn, projection.name) - keep:
        projection.reset(conn, projection.tables(generation))


ProgressFn = Callable[[Progress], None]


def rebuild(
    db: ProjectionDB,
    projection: Projection,
    *,
    progress: ProgressFn | None = None,
    batch_size: int = 5000,
    commit_every: int = 200_000,
) -> int:
    """Replay the whole log into fresh tables and swap them in; returns events applied.

    Readers see the old generation, complete, until the swap commits. A crash leaves
    only unreferenced tables, dropped by the next rebuild. A poison event ends the
    replay early: the new generation is swapped in with its checkpoint just before
    the event and the error recorded, as catch-up would have left it.
    """
    store, name = db.store, projection.name
    with db.write() as conn:
        meta = read_meta(conn, name) or _create_meta(conn, projection)
        generation = meta.next_generation
        conn.execute(
            "UPDATE projection_meta SET next_generation = ? WHERE name = ?", (generation + 1, name)
        )
        _drop_other_generations(conn, projection, {meta.generation})
        tables = projection.tables(generation)
        (projection.bulk_setup or projection.setup)(conn, tables)
    head = store.last_position()
    started, conn = time.monotonic(), db.conn()
    sql = projection.bulk_sql is not None and projection.bulk_extract is not None
    log_file = _log_file(store) if sql else None
    total = _handled_total(store, projection, log_file)
    try:
        if log_file is not None:
            done, poison = _load_in_sql(
                db, conn, projection, tables, log_file, head, total, progress, started
            )
        else:
            done, poison = _load_batches(
                db,
                conn,
                projection,
                tables,
                head,
                total,
                progress,
                started,
                batch_size,
                commit_every,
            )
        if progress is not None:
            progress(_progress(name, "finishing", done, total, started))
        with transaction(conn, "IMMEDIATE"):
            projection.finish(conn, tables)
        done += _swap(db, projection, generation, head, poison)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        with db.write() as cleanup:
            if read_meta(cleanup, name).generation != generation:
                projection.reset(cleanup, tables)
        raise
    if progress is not None:
        progress(_progress(name, "done", done, max(total, done), started))
    return done


def _log_file(store) -> str | None:
    """The log's SQLite file, when a rebuild may read it directly in SQL."""
    return store.path if getattr(store, "backend", None) == "sqlite" else None


def _handled_total(store, projection: Projection, log_file: str | None) -> int:
    """About how many events the rebuild will apply, for progress reports.

    From a SQLite log's per-type counters directly: `stats()` also counts the
    deliveries journal, which costs more than a second per million deliveries.
    """
    if log_file is not None:
        conn = sqlite3.connect(log_file, timeout=10.0)
        try:
            marks = ", ".join("?" * len(projection.handles))
            (total,) = conn.execute(
                f"SELECT coalesce(sum(events), 0) FROM type_counts WHERE type IN ({marks})",
                projection.handles,
            ).fetchone()
            return total
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    return sum(store.stats().events_by_type.get(t, 0) for t in projection.handles)


def _load_batches(
    db, conn, projection, tables, head, total, progress, started, batch_size, commit_every
):
    """Load the log through the store's read API, batch by batch (any backend)."""
    load = projection.load or projection.apply
    done, since_commit, poison = 0, 0, None
    conn.execute("BEGIN IMMEDIATE")
    for batch in db.store.read_batches(
        0, batch_size=batch_size, types=projection.handles, until=head
    ):
        poison = _apply_batch(conn, tables, batch, load)
        if poison is not None:
            done += sum(1 for e in batch if e.position < poison[0].position)
            break
        done += len(batch)
        since_commit += len(batch)
        if since_commit >= commit_every:
            # Short commits let catch-up in other processes keep the old model current.
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            since_commit = 0
        if progress is not None:
            progress(_progress(projection.name, "loading", done, total, started))
    conn.execute("COMMIT")
    return done, poison


SQL_CHUNK = 50_000  # log positions per chunk of a SQL rebuild
EXTRACT_THREADS = 2  # connections parsing chunks while this one writes the tables


def _extract_chunk(projection: Projection, log_file: str, path: str, after: int, until: int):
    """On a worker thread: parse one chunk of the log into its own scratch file.

    The scratch file has no journal and no fsync (it is thrown away after use); the
    log is attached and only read, in one deferred transaction, so ingest never waits.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-8192")
        conn.execute("ATTACH DATABASE ? AS log", (log_file,))
        with transaction(conn):
            projection.bulk_extract(conn, "log.events", "main", after, until)
    finally:
        conn.close()
    return path


def _load_in_sql(db, conn, projection, tables, log_file, head, total, progress, started):
    """Load a SQLite log by reading it from SQL, with no Python per event.

    Worker threads (sqlite3 releases the GIL while stepping) each parse a chunk of
    positions into a scratch file, reading the log in a deferred transaction; this
    connection attaches each chunk in position order and appends it to the tables in
    one transaction that writes only the projections file. A chunk the SQL cannot
    read (a malformed body) is redone batch by batch to find the poison event.
    """
    load = projection.load or projection.apply
    done, poison = 0, None
    folder = tempfile.mkdtemp(prefix=".rebuild-", dir=os.path.dirname(os.path.abspath(db.path)))
    chunks = iter([(a, min(a + SQL_CHUNK, head)) for a in range(0, head, SQL_CHUNK)])
    pool = ThreadPoolExecutor(EXTRACT_THREADS, thread_name_prefix="rebuild-extract")
    pending: deque = deque()

    def submit() -> None:
        chunk = next(chunks, None)
        if chunk is not None:
            path = os.path.join(folder, f"chunk-{chunk[0]}.db")
            task = pool.submit(_extract_chunk, projection, log_file, path, *chunk)
            pending.append((chunk, task))

    try:
        for _ in range(EXTRACT_THREADS + 1):  # one parsed chunk ready ahead of each worker
            submit()
        while pending:
            (after, until), task = pending.popleft()
            try:
                path = task.result()
            except TRANSIENT:
                raise
            except Exception:  # noqa: BLE001 - find the event to blame the slow way
                path = None
            submit()
            if path is not None:
                conn.execute("ATTACH DATABASE ? AS chunk", (path,))
                try:
                    with transaction(conn):
                        done += projection.bulk_sql(conn, tables, "chunk")
                finally:
                    conn.execute("DETACH DATABASE chunk")
                os.remove(path)
            else:
                with transaction(conn):
                    for batch in db.store.read_batches(
                        after, types=projection.handles, until=until
                    ):
                        poison = _apply_batch(conn, tables, batch, load)
                        if poison is not None:
                            done += sum(1 for e in batch if e.position < poison[0].position)
                            break
                        done += len(batch)
            if poison is not None:
                break
            if progress is not None:
                progress(_progress(projection.name, "loading", done, total, started))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(folder, ignore_errors=True)
    return done, poison


def _swap(db: ProjectionDB, projection: Projection, generation: int, built_to: int, poison) -> int:
    """Bring the new generation to the log's head and make it the served one, atomically."""
    name, tables, applied = projection.name, projection.tables(generation), 0
    with db.write() as conn:
        head = db.store.last_position()
        if poison is None:
            for batch in db.store.read_batches(
                built_to, batch_size=2000, types=projection.handles, until=head
            ):
                poison = _apply_batch(conn, tables, batch, projection.apply)
                if poison is not None:
                    break
                applied += len(batch)
        conn.execute(
            "UPDATE projection_meta SET version = ?, generation = ? WHERE name = ?",
            (projection.version, generation, name),
        )
        if poison is None:
            _set_checkpoint(conn, name, head, _chain_at(db, head))
        else:
            event, exc = poison
            _set_checkpoint(
                conn, name, event.position - 1, _chain_at(db, event.position - 1), False
            )
            _record_error(conn, name, event, f"{type(exc).__name__}: {exc}")
        _drop_other_generations(conn, projection, {generation})
    return applied


def _progress(name: str, phase: str, done: int, total: int, started: float) -> Progress:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 and total >= done else None
    return Progress(name, phase, done, total, rate, eta)
