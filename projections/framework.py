"""What a projection is: a name, a version, the event types it handles, and its functions.

A new read model (say for `upload.*` or `file.*`) is one new module that builds a
`Projection` and is added to the list given to `ProjectionRunner`. The framework
owns checkpoints, transactions, generations and rebuilds; a projection only says
how to create, drop and fold into its tables, whose names it receives as `Tables`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from store import Event


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


class RebuildFailed(ProjectionError):
    """A rebuild stopped (for instance on an event its projection cannot apply).

    The previous generation is still served, untouched.
    """


class Tables:
    """Generation-suffixed table names: `Tables("timeline", 3).events == "timeline_events_g3"`."""

    __slots__ = ("generation", "prefix")

    def __init__(self, prefix: str, generation: int):
        self.prefix = prefix
        self.generation = generation

    def __getattr__(self, base: str) -> str:
        if base.startswith("_"):
            raise AttributeError(base)
        return f"{self.prefix}_{base}_g{self.generation}"


Setup = Callable[[sqlite3.Connection, Tables], None]
Apply = Callable[[sqlite3.Connection, Tables, Sequence[Event]], None]


def _no_finish(conn: sqlite3.Connection, tables: Tables) -> None:
    return None


@dataclass(frozen=True)
class Projection:
    """A deterministic fold of some event types into tables of the projections file.

    - `setup(conn, tables)`: create the tables (idempotent: IF NOT EXISTS).
    - `reset(conn, tables)`: drop them.
    - `apply(conn, tables, events)`: fold events (all of a handled type, ascending
      position) into the tables. It runs inside the transaction that also moves the
      checkpoint; raising rolls both back. The result must not depend on how the log
      is cut into batches, nor on the order events arrive in within the log.
    - `load` / `finish`: the bulk path of a rebuild; `load` defaults to `apply` and
      `finish` (called once, in the last transaction of a rebuild) to a no-op. A
      projection may make `load` cheaper (no indexes, no aggregates) and settle
      everything in `finish`, as long as the tables end identical to `apply`'s.
    - `bulk_setup`: like `setup`, for the empty tables a rebuild fills with `load`.
    - `bulk_extract(conn, source, schema, after, until)` and `bulk_sql(conn, tables, schema)`:
      optional, the SQL path of a rebuild over a SQLite log, split in two so that the
      parsing can run on other threads. `bulk_extract` creates tables in `schema` from
      the handled events of `source` (a log table readable from `conn`, any connection)
      with after < position <= until, reading only; `bulk_sql` then does what `load`
      would do for those events, from that schema attached to the projections
      connection, and returns how many it applied. Both raise on a body they cannot
      read; the rebuild then finds the poison event through `load`.
    """

    name: str
    version: int
    handles: tuple[str, ...]
    setup: Setup
    reset: Setup
    apply: Apply
    load: Apply | None = None
    finish: Setup = _no_finish
    bulk_setup: Setup | None = None
    bulk_extract: Callable[[sqlite3.Connection, str, str, int, int], None] | None = None
    bulk_sql: Callable[[sqlite3.Connection, Tables, str], int] | None = None

    def tables(self, generation: int) -> Tables:
        return Tables(self.name, generation)
