"""What a failure of a projection means, decided from its type, never from its text.

- **transient**: the log is unavailable (`StoreUnavailable`), the projections file is
  busy or locked (SQLite's `SQLITE_BUSY*` / `SQLITE_LOCKED*`, by error name), or
  another rebuild runs. Nothing is wrong with the data: retry with a short backoff.
- **poison**: the projection says an event's body cannot be folded, by raising
  `MalformedBody` or a type it lists in `Projection.poison`. Everything before the
  event is committed, the checkpoint stops just before it and the event is reported.
- **defect**: anything else (a SQL error in the projection's code, a damaged file
  (`ReadModelCorrupt`), a corrupt log (`StoreCorrupt`), a file adopted by another
  log). It is no event's fault and a retry will not fix it soon: recorded, reported,
  and retried only after a long backoff.

Inside the engine SQLite's errors stay raw until classified; `translated` is the one
place where they become this package's errors on the way out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum

from store import Event, StoreError, StoreUnavailable
from store.sqlite_engine import sqlite3

from .framework import (
    MalformedBody,
    PoisonEvent,
    Projection,
    ProjectionDefect,
    ProjectionError,
    ReadModelCorrupt,
    ReadModelUnavailable,
    RebuildBusy,
    Tables,
)

_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")  # and their extended forms (SQLITE_BUSY_SNAPSHOT)


class Kind(StrEnum):
    TRANSIENT = "transient"
    POISON = "poison"
    DEFECT = "defect"


def is_busy(exc: BaseException) -> bool:
    """A SQLite error saying another connection holds a lock: retrying will succeed."""
    name = getattr(exc, "sqlite_errorname", None) if isinstance(exc, sqlite3.Error) else None
    return name is not None and name.startswith(_BUSY)


def classify(exc: BaseException, projection: Projection) -> Kind:
    """Transient, poison or defect (see the module's docstring)."""
    if isinstance(exc, ReadModelCorrupt):
        return Kind.DEFECT
    if isinstance(exc, StoreUnavailable | ReadModelUnavailable | RebuildBusy) or is_busy(exc):
        return Kind.TRANSIENT
    if isinstance(exc, (MalformedBody, PoisonEvent, *projection.poison)):
        return Kind.POISON
    return Kind.DEFECT


@contextmanager
def translated(projection: Projection) -> Iterator[None]:
    """Let only this package's and the store's errors out of the block.

    A busy SQLite file becomes ReadModelUnavailable; any other exception (not a
    BaseException such as KeyboardInterrupt) becomes ProjectionDefect.
    """
    try:
        yield
    except (ProjectionError, StoreError):
        raise
    except Exception as exc:
        if classify(exc, projection) is Kind.TRANSIENT:
            raise ReadModelUnavailable(f"{projection.name}: {exc}") from exc
        raise ProjectionDefect(projection.name, exc) from exc


Poison = tuple[Event, BaseException]


def apply_batch(
    conn: sqlite3.Connection, projection: Projection, tables: Tables, batch: Sequence[Event], fold
) -> Poison | None:
    """Fold a batch under a savepoint; on a poison event keep the prefix before it.

    Returns the poison event and its error, or None. Transient errors and defects
    propagate with the savepoint rolled back (the caller's transaction then is too).
    Events whose body was pruned or erased contribute nothing: they are not folded.
    """
    batch = [event for event in batch if event.body]
    conn.execute("SAVEPOINT batch")
    try:
        fold(conn, tables, batch)
    except Exception as exc:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        if classify(exc, projection) is not Kind.POISON:
            raise
        return _apply_until_poison(conn, projection, tables, batch, fold)
    conn.execute("RELEASE batch")
    return None


def _apply_until_poison(conn, projection, tables, events: Sequence[Event], fold) -> Poison | None:
    """Fold events one by one under savepoints; stop at the first poison one."""
    for event in events:
        conn.execute("SAVEPOINT one")
        try:
            fold(conn, tables, [event])
        except Exception as exc:
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            if classify(exc, projection) is not Kind.POISON:
                raise
            return event, exc
        conn.execute("RELEASE one")
    return None
