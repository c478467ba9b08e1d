"""Atomic rebuild of one projection: replay the whole log into a new generation, swap it in.

Readers see the old generation, complete, until the swap commits. A crash leaves
only unreferenced tables, dropped by the next rebuild. One rebuild runs at a time
per projections file (`lease`); a second one raises `RebuildBusy` and touches nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from store.sqlite_engine import sqlite3

from .bulk import SQL_CHUNK, load_batches, load_in_sql
from .checkpoints import chain_at, create_meta, drop_other_generations, set_checkpoint, stop_before
from .db import ProjectionDB, connect, read_meta, transaction
from .failures import Poison, apply_batch, translated
from .framework import Projection
from .lease import rebuild_lock


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a rebuild is: `done` of about `total` events, `rate` events/s, `eta` s."""

    projection: str
    phase: str  # "loading", "finishing", "swapping", "done"
    done: int
    total: int
    rate: float
    eta: float | None


ProgressFn = Callable[[Progress], None]


def rebuild(
    db: ProjectionDB,
    projection: Projection,
    *,
    progress: ProgressFn | None = None,
    batch_size: int = 5000,
    commit_every: int = 200_000,
    chunk: int = SQL_CHUNK,
) -> int:
    """Replay the whole log into fresh tables and swap them in; returns events applied.

    A poison event ends the replay early: the new generation is swapped in with its
    checkpoint just before the event and the error recorded, as catch-up would have
    left it. `batch_size` and `commit_every` shape the load of projections without
    SQL functions, `chunk` (log positions per task) that of the others. Raises RebuildBusy when another rebuild of this file is running, and
    otherwise only this package's errors and the store's (see `failures`).
    """
    with rebuild_lock(db.path), translated(projection):
        return _rebuild(db, projection, progress, batch_size, commit_every, chunk)


def _rebuild(db, projection, progress, batch_size, commit_every, chunk) -> int:
    # A connection of the rebuild's own: its TEMP stage goes with it when it closes (an
    # unlink, where DROP TABLE walks every page).
    conn = connect(db.path, db.timeout)
    try:
        return _build(db, conn, projection, progress, batch_size, commit_every, chunk)
    finally:
        conn.close()


def _build(db, conn, projection, progress, batch_size, commit_every, chunk) -> int:
    store, name = db.store, projection.name
    with transaction(conn, "IMMEDIATE"):
        db.check_bound(conn)
        meta = read_meta(conn, name) or create_meta(conn, projection)
        generation = meta.next_generation
        conn.execute(
            "UPDATE projection_meta SET next_generation = ? WHERE name = ?", (generation + 1, name)
        )
        drop_other_generations(conn, projection, {meta.generation})
        tables = projection.tables(generation)
        (projection.bulk_setup or projection.setup)(conn, tables)
    head = store.last_position()
    counts = store.type_counts()
    handled = counts if projection.handles is None else projection.handles
    total = sum(counts.get(t, 0) for t in handled)  # for progress: about
    started = time.monotonic()

    def report(phase: str, done: int) -> None:
        if progress is not None:
            progress(_progress(name, phase, done, max(total, done), started))

    try:
        if projection.bulk_sql is not None and projection.bulk_extract is not None:
            loading = load_in_sql(
                db, conn, projection, tables, head, lambda n: report("loading", n), chunk=chunk
            )
        else:
            loading = load_batches(
                db,
                conn,
                projection,
                tables,
                head,
                lambda n: report("loading", n),
                batch_size=batch_size,
                commit_every=commit_every,
            )
        done, poison = loading
        report("finishing", done)
        with transaction(conn, "IMMEDIATE"):
            projection.finish(conn, tables)
        done += _swap(db, projection, generation, head, poison)
    except BaseException:
        _drop_unserved(db, conn, projection, generation)
        raise
    report("done", done)
    return done


def _drop_unserved(
    db: ProjectionDB, conn: sqlite3.Connection, projection: Projection, generation: int
) -> None:
    """After a failed rebuild on `conn`: drop its tables unless they were swapped in."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    # Best effort: the next rebuild drops them anyway, and the first error is the one to report.
    with suppress(Exception), db.write() as cleanup:
        if read_meta(cleanup, projection.name).generation != generation:
            projection.reset(cleanup, projection.tables(generation))


def _swap(
    db: ProjectionDB, projection: Projection, generation: int, built_to: int, poison: Poison | None
) -> int:
    """Bring the new generation to the log's head and make it the served one, atomically."""
    name, tables, applied = projection.name, projection.tables(generation), 0
    with db.write() as conn:
        head = db.store.last_position()
        if poison is None:
            for batch in db.store.read_batches(
                built_to, batch_size=2000, types=projection.handles, until=head
            ):
                poison = apply_batch(conn, projection, tables, batch, projection.apply)
                if poison is not None:
                    break
                applied += len(batch)
        conn.execute(
            "UPDATE projection_meta SET version = ?, generation = ? WHERE name = ?",
            (projection.version, generation, name),
        )
        if poison is None:
            set_checkpoint(conn, name, head, chain_at(db, head))
        else:
            stop_before(db, conn, name, *poison)
        drop_other_generations(conn, projection, {generation})
    return applied


def _progress(name: str, phase: str, done: int, total: int, started: float) -> Progress:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 and total >= done else None
    return Progress(name, phase, done, total, rate, eta)
