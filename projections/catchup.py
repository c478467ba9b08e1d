"""Checkpointed catch-up: apply the log after a projection's checkpoint.

Each batch and the new checkpoint commit in one transaction; events of other types
still advance it. On a poison event, everything before it is committed, the
checkpoint stops just before it, the error is recorded in meta and `PoisonEvent` is
raised. Transient failures raise `ReadModelUnavailable` or `StoreUnavailable`, any
other `ProjectionDefect` (see `failures`), with nothing of the failed batch kept.

Several processes may run catch-up at once: a writer re-reads the meta row inside its
write transaction and gives up (retrying later) if someone else moved it meanwhile,
so no event is applied twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from store import Event

from .checkpoints import chain_at, set_checkpoint, stop_before
from .db import ProjectionDB, read_meta
from .failures import apply_batch, translated
from .framework import PoisonEvent, Projection, ProjectionError


class _Moved(ProjectionError):
    """Another writer moved the meta row while we were reading the log (internal)."""


def catch_up(
    db: ProjectionDB,
    projection: Projection,
    *,
    batch_size: int = 2000,
    budget: float | None = None,
) -> int:
    """Apply every event after the checkpoint up to the log's head now; returns how many.

    With `budget` (seconds), stop after the first batch that ends past it: the
    checkpoint then stands at that batch's last position and the rest waits for the
    next call, so one slow projection never holds back the others of a pass.
    """
    with translated(projection):
        return _catch_up(db, projection, batch_size, budget)


def _catch_up(
    db: ProjectionDB, projection: Projection, batch_size: int, budget: float | None = None
) -> int:
    deadline = None if budget is None else time.monotonic() + budget
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
            poison = (
                apply_batch(conn, projection, tables, batch, projection.apply) if batch else None
            )
            if poison is not None:
                stop_before(db, conn, name, *poison)  # commits what came before it
            else:
                position = head if last else batch[-1].position
                chain = batch[-1].chain if batch and batch[-1].position == position else None
                set_checkpoint(conn, name, position, chain or chain_at(db, position))
        if poison is not None:
            raise PoisonEvent(name, *poison)
        applied += len(batch)
        meta = read_meta(db.conn(), name)
        if deadline is not None and not last and time.monotonic() > deadline:
            break  # the checkpoint is this batch's last position: the rest is next time
    return applied


def _lookahead(batches: Iterator[list[Event]]) -> Iterator[tuple[list[Event], bool]]:
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        yield batch, following is None
        batch = following


def _with_tail(steps: Iterator[tuple[list[Event], bool]]):
    """Like `steps`, but an empty last batch when nothing was read, to move the checkpoint."""
    seen = False
    for step in steps:
        seen = True
        yield step
    if not seen:
        yield [], True


def catch_up_safely(
    db: ProjectionDB,
    projection: Projection,
    *,
    batch_size: int = 2000,
    budget: float | None = None,
) -> int:
    """`catch_up`, retrying when another process moved the checkpoint under us."""
    for _ in range(5):
        try:
            return catch_up(db, projection, batch_size=batch_size, budget=budget)
        except _Moved:
            continue
    return 0
