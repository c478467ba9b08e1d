"""What a projection is: a name, a version, the event types it handles, and its functions.

A new read model (say for `upload.*` or `file.*`) is one new module that builds a
`Projection` and is added to the list given to `ProjectionRunner`. The framework
owns checkpoints, transactions, generations and rebuilds; a projection only says
how to create, drop and fold into its tables, whose names it declares and receives
as `Tables`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from store import Event
from store.sqlite_engine import sqlite3


class ProjectionError(Exception):
    """Base of the errors of this package."""


class AssetNotFound(ProjectionError):
    """No event of this asset (in either its http or https form) was ever projected."""

    def __init__(self, asset_url: str):
        super().__init__(f"no events for asset {asset_url}")
        self.asset_url = asset_url


class InvalidQuery(ProjectionError, ValueError):
    """A query argument that cannot be used: unknown status, bad cursor, bad time."""


class UnknownProjection(ProjectionError):
    """A projection name that is not registered."""


class ReadModelUnavailable(ProjectionError):
    """The projections file cannot be read or written right now (locked, missing, full).

    Transient: the log is untouched and the same call may succeed later, so a server
    answers 503 with Retry-After. The SQLite error is the `__cause__`.
    """


class ReadModelCorrupt(ReadModelUnavailable):
    """The projections file is damaged: SQLite found a page it cannot read.

    Unlike its base this is not transient; the message names the file and the way on
    (remove it: the read models are rebuilt from the log). A subclass of
    ReadModelUnavailable, so whatever answers 503 for that answers for this too.
    """


class ReadModelOfAnotherLog(ProjectionError):
    """The projections file was built from another log than the one it is opened with.

    Nothing of this log is applied to it and nothing in it is served for this log
    until it is adopted (`open_projections(store, path, adopt=True)`, which empties it:
    what `ikledger rebuild` does). `path` is the file.
    """

    def __init__(self, path: str, reason: str):
        super().__init__(
            f"the read models in {path} belong to another log: {reason}; "
            "`ikledger rebuild` rebuilds them from this log"
        )
        self.path = path
        self.reason = reason


# What means "the read models' file cannot be read right now", for HTTP and the CLI alike.
# The package translates its SQLite errors into ReadModelUnavailable; a sqlite3.Error
# that still escapes it (a query that reads outside `db.read()`) means the same: the
# store never lets a driver error out, so above `store/` it can only be a read model's.
UNREADABLE: tuple[type[Exception], ...] = (ReadModelUnavailable, sqlite3.Error)


class MalformedBody(ProjectionError, ValueError):
    """An event's body that a projection cannot fold: the event is poison.

    A projection raises it (or a type it lists in `Projection.poison`) from `apply`
    or `load`; the framework then stops just before that event and reports it.
    """


class PoisonEvent(ProjectionError):
    """A projection could not apply the event at `position`; it stopped just before it."""

    def __init__(self, name: str, event: Event, cause: BaseException):
        super().__init__(f"{name}: cannot apply event {event.id} at {event.position}: {cause!r}")
        self.position = event.position
        self.event_id = event.id
        self.cause = cause


class ProjectionDefect(ProjectionError):
    """A failure that is neither transient nor an event's fault: a bug or a broken file.

    Recorded in the meta row and retried only after a long backoff; the cause (the
    original exception) is the `__cause__`.
    """

    def __init__(self, name: str, cause: BaseException):
        super().__init__(f"{name}: {type(cause).__name__}: {cause}")
        self.cause = cause


class RebuildFailed(ProjectionError):
    """A rebuild stopped (for instance on an event its projection cannot apply).

    The previous generation is still served, untouched.
    """


class RebuildBusy(ProjectionError):
    """Another rebuild of the same read models is running; this one did not start."""


class Tables:
    """A projection's declared table names, suffixed by generation.

    `Tables("timeline", 3, ("events",)).events == "timeline_events_g3"`; a name the
    projection did not declare raises AttributeError instead of naming a new table.
    """

    __slots__ = ("generation", "names", "prefix")

    def __init__(self, prefix: str, generation: int, names: Sequence[str]):
        self.prefix = prefix
        self.generation = generation
        self.names = tuple(names)

    def __getattr__(self, base: str) -> str:
        # Called only when ordinary lookup fails, so never for a slot that is set.
        if base not in Tables.__slots__ and base in self.names:
            return f"{self.prefix}_{base}_g{self.generation}"
        raise AttributeError(f"projection {self.prefix!r} declares no table {base!r}")


Setup = Callable[[sqlite3.Connection, Tables], None]
Apply = Callable[[sqlite3.Connection, Tables, Sequence[Event]], None]

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _no_finish(conn: sqlite3.Connection, tables: Tables) -> None:
    return None


@dataclass(frozen=True)
class Projection:
    """A deterministic fold of some event types into tables of the projections file.

    - `table_names`: the base names of its tables (`("events", ...)`); `Tables` gives
      only these, so a typo is an AttributeError, not a new table.
    - `setup(conn, tables)`: create the tables (idempotent: IF NOT EXISTS).
    - `reset(conn, tables)`: drop them.
    - `apply(conn, tables, events)`: fold events (all of a handled type, ascending
      position) into the tables. It runs inside the transaction that also moves the
      checkpoint; raising rolls both back. The result must not depend on how the log
      is cut into batches, nor on the order events arrive in within the log.
    - `handles`: the event types it folds, or None for every event (any type, known
      or not: a read model of the whole log).
    - `poison`: exception types (besides `MalformedBody`) by which `apply`/`load` say
      an event's body cannot be folded. Any other exception is transient (a locked
      file, an unavailable log) or a defect, never blamed on an event.
    - `load` / `finish`: the bulk path of a rebuild; `load` defaults to `apply` and
      `finish` (called once, in the last transaction of a rebuild) to a no-op. A
      projection may make `load` cheaper (no indexes, no aggregates) and settle
      everything in `finish`, as long as the tables end identical to `apply`'s.
      `finish` may commit part of its work and begin again (the generation is served
      only from the swap; a failed rebuild drops it): it must return in a transaction.
    - `bulk_setup`: like `setup`, for the empty tables a rebuild fills with `load`.
    - `bulk_extract(conn, source, schema, after, until)` and `bulk_sql(conn, tables, schema)`:
      optional, the SQL path of a rebuild, split in two so that the parsing can run on
      other threads. `bulk_extract` creates tables in `schema` from the handled events
      of `source` (a relation readable from `conn` with the columns position, id,
      type, created_at, body) with after < position <= until, reading only;
      `bulk_sql` then does what `load` would do for those events, from that schema
      attached to the projections connection, and returns how many it applied. Both
      raise a poison error on a body they cannot read; the rebuild then finds the
      poison event through `load`.
    """

    name: str
    version: int
    handles: tuple[str, ...] | None
    setup: Setup
    reset: Setup
    apply: Apply
    load: Apply | None = None
    finish: Setup = _no_finish
    bulk_setup: Setup | None = None
    bulk_extract: Callable[[sqlite3.Connection, str, str, int, int], None] | None = None
    bulk_sql: Callable[[sqlite3.Connection, Tables, str], int] | None = None
    table_names: tuple[str, ...] = ()
    poison: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        for base in (self.name, *self.table_names):
            if not _NAME.match(base):
                raise ValueError(f"not a table name part: {base!r}")

    def tables(self, generation: int) -> Tables:
        return Tables(self.name, generation, self.table_names)
