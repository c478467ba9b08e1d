"""A projection's meta row: creation, checkpoint, recorded errors, and its generations.

The row of `projection_meta` names the generation being served, its checkpoint (the
last log position applied) and the log's chain value at that position, by which a
replaced log is recognised.
"""

from __future__ import annotations

import re

from store import Event, utc_now
from store.sqlite_engine import sqlite3

from .db import Meta, ProjectionDB, read_meta, transaction
from .framework import Projection


def create_meta(conn: sqlite3.Connection, projection: Projection) -> Meta:
    """Insert the meta row of a new projection, serving generation 1 (created empty)."""
    projection.setup(conn, projection.tables(1))
    conn.execute(
        "INSERT INTO projection_meta (name, version, generation, checkpoint, chain, "
        "next_generation, updated_at, error_attempts) VALUES (?, ?, 1, 0, NULL, 2, ?, 0)",
        (projection.name, projection.version, utc_now()),
    )
    return read_meta(conn, projection.name)


def ensure(db: ProjectionDB, projection: Projection) -> str | None:
    """Make sure the projection exists; return why it must be rebuilt, or None.

    An existing projection is only read (no write lock: a read command does not wait
    for a server's catch-up); a new one is created in a write transaction.
    """
    conn = db.conn()
    with transaction(conn):  # errors propagate as `db.write()`'s do
        db.check_bound(conn)
        meta = read_meta(conn, projection.name)
    if meta is None:
        with db.write() as conn:
            meta = read_meta(conn, projection.name) or create_meta(conn, projection)
    if meta.version != projection.version:
        return f"code version {projection.version} differs from tables' {meta.version}"
    if meta.checkpoint > 0:
        found = db.store.get_positions([meta.checkpoint])
        if not found or found[0].chain != meta.chain:
            return f"the log at position {meta.checkpoint} is not the one projected"
    return None


def chain_at(db: ProjectionDB, position: int) -> bytes | None:
    """The log's chain value at `position`; None before the first event."""
    if position <= 0:
        return None
    found = db.store.get_positions([position])
    return found[0].chain if found else None


def set_checkpoint(
    conn: sqlite3.Connection, name: str, position: int, chain: bytes | None, clear: bool = True
) -> None:
    """Move the checkpoint; `clear` also forgets the recorded error (progress was made)."""
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


def stop_before(
    db: ProjectionDB, conn: sqlite3.Connection, name: str, event: Event, exc: BaseException
) -> None:
    """Leave the checkpoint just before a poison event and record why, in `conn`'s transaction."""
    position = event.position - 1
    set_checkpoint(conn, name, position, chain_at(db, position), clear=False)
    note_error(conn, name, event, f"{type(exc).__name__}: {exc}")


def note_error(conn: sqlite3.Connection, name: str, event: Event | None, message: str) -> None:
    """Note an error; attempts count consecutive failures at the same position."""
    position = event.position if event else None
    conn.execute(
        "UPDATE projection_meta SET error_attempts = CASE WHEN error_position IS ? "
        "THEN coalesce(error_attempts, 0) + 1 ELSE 1 END, error_position = ?, "
        "error_event_id = ?, error_message = ?, error_at = ? WHERE name = ?",
        (position, position, event.id if event else None, message, utc_now(), name),
    )


def record_error(db: ProjectionDB, name: str, message: str) -> None:
    """Note a failure that names no event (transient or a defect) in the meta row."""
    with db.write() as conn:
        note_error(conn, name, None, message)


_GEN = re.compile(r"_g(\d+)$")


def generations(conn: sqlite3.Connection, name: str) -> set[int]:
    """The generations of which some table of projection `name` exists."""
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
        (len(name) + 1, name + "_"),
    ).fetchall()
    return {int(m.group(1)) for (n,) in names if (m := _GEN.search(n))}


def drop_other_generations(conn: sqlite3.Connection, projection: Projection, keep: set[int]):
    for generation in generations(conn, projection.name) - keep:
        projection.reset(conn, projection.tables(generation))
