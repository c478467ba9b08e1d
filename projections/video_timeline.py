"""The timeline projection: per asset, its transformation requests and their events.

`TIMELINE` is the `Projection` to register; its statements are in `timeline_sql`.
Tables (generation g):

- `timeline_events_g`: one row per video event (position, id, type, created_at,
  asset key, transformation key). It is also the asset → positions index.
- `timeline_transformations_g`: one row per (asset, transformation key). Events are
  ordered by (created_at, then log position), never by arrival, and each group
  of fields comes from the one event it describes:
  - request id, request URL, kind, options: the earliest `accepted` (else the
    earliest event); `accepted_at`: the earliest `accepted`;
  - `ready_at`, output URL, video metadata, timings: the latest `ready`;
  - `error_at`, error reason: the latest `error`;
  - `status`: the type of the latest terminal event (`ready` or `error`), else
    `accepted`. So with both, `ready_at > error_at` exactly when the status is
    `ready` (ImageKit retried and succeeded), and the other group stays visible;
  - `attempts`: how many terminal events ImageKit sent (above 1: it reported twice).
- `timeline_assets_g`: one row per asset, counted from its transformations.
- `timeline_counts_g`, `timeline_durations_g`: the transformations counted by bucket
  (5 minutes, hour and day) of their latest event, status, kind, format and reason,
  and a histogram of their accepted→ready durations (`timeline_stats_sql`), for
  `stats`. `timeline_projection(counts=False)` leaves them out (the rebuild
  benchmark's baseline; never registered).

The merge is an UPSERT whose every column is a min/max by (created_at, position) or comes from the
event such a min/max designates, so it is order-independent: a rebuild (`load` +
`finish`, or `bulk_extract` + `bulk_sql` + `finish`), any sequence of incremental
batches (`apply`) and an `as_of` refold give identical rows, whatever order
events arrived in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from store import Event
from store.sqlite_engine import sqlite3

from . import stats_aside
from .db import sorting
from .framework import MalformedBody, Projection, Tables
from .timeline_sql import (
    ASSETS_ALL,
    ASSETS_OF_BATCH,
    BULK_MERGE,
    CREATE_ASSETS,
    CREATE_EVENTS,
    CREATE_INDEXES,
    CREATE_TRANSFORMATIONS,
    MERGE,
    ROWS,
    STAGE_COLUMNS,
)
from .timeline_stats_sql import (
    APPLY_DELTA,
    CREATE_COUNTS,
    CREATE_DURATIONS,
    DELTA_AFTER,
    DELTA_BEFORE,
    DELTA_GRAINS,
    STATS_ALL,
)

PREFIX = "video.transformation."
HANDLES = (PREFIX + "accepted", PREFIX + "ready", PREFIX + "error")
# 2: ready_at/error_at from the latest ready/error (were the earliest); attempts.
# 3: events ordered by (created_at, position) row values; `*_pos` integers replace the
#    stored `ord`/`*_ord`/`info_key` order strings.
# 4: the counts and durations tables of the overview.
# 5: those per hour and per day too; durations as a histogram of log-spaced bins.
VERSION = 5


def asset_key(url: str) -> str:
    """The identity of an asset URL: `http://` and `https://` forms of it are the same asset."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return "//" + rest
    return url


def sql(statement: str, t: Tables | None = None, **names: str) -> str:
    """A statement of `timeline_sql` with its table names filled in: `t`'s, and `names`."""
    if t is not None:
        names = {
            "events": t.events,
            "transformations": t.transformations,
            "assets": t.assets,
            "stage": t.stage,
            "counts": t.counts,
            "durations": t.durations,
            **names,
        }
    return statement.format(**names)


def _run(conn: sqlite3.Connection, statement: str, params: dict, source: str) -> None:
    """Run an extraction over `source`'s events in (after, until]; MalformedBody names a bad one.

    SQLite reports a body its JSON functions cannot read as a plain SQLITE_ERROR, with no
    code of its own, so the failure is explained by looking: the first event of the range
    whose body `json_valid` refuses is poison; any other failure is re-raised unchanged.
    """
    try:
        conn.execute(statement, params)
    except sqlite3.OperationalError as exc:
        bad = conn.execute(
            f"SELECT position FROM {source} WHERE position > :after AND position <= :until"
            " AND NOT json_valid(CAST(body AS TEXT)) ORDER BY position LIMIT 1",
            params,
        ).fetchone()
        if bad is None:
            raise
        raise MalformedBody(f"the body at position {bad[0]} is not JSON ({exc})") from None


_BATCH = "timeline_batch"


def _extract_batch(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Extract a batch of raw events into temp.timeline_rows; append them to the events table."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH} (position INTEGER PRIMARY KEY, "
        "id TEXT, type TEXT, created_at TEXT, body BLOB)"
    )
    conn.execute(f"DELETE FROM temp.{_BATCH}")
    conn.executemany(
        f"INSERT INTO temp.{_BATCH} VALUES (?,?,?,?,?)",
        [(e.position, e.id, e.type, e.created_at, e.body) for e in events],
    )
    conn.execute("DROP TABLE IF EXISTS temp.timeline_rows")
    positions = [e.position for e in events] or [0]
    _run(
        conn,
        "CREATE TEMP TABLE timeline_rows AS " + sql(ROWS, source=f"temp.{_BATCH}"),
        {"after": min(positions) - 1, "until": max(positions)},
        f"temp.{_BATCH}",
    )
    conn.execute(
        sql("INSERT INTO {events} SELECT {columns} FROM temp.timeline_rows", t, columns=_EVENTS)
    )


_EVENTS = "position, event_id, etype, created_at, asset, tkey"
_STAGED = "position, url, rid, rurl, kind, options, out_url, vm, timings, reason"


def _create_tables(conn: sqlite3.Connection, t: Tables, counts: bool = True) -> None:
    for statement in (CREATE_EVENTS, CREATE_TRANSFORMATIONS, CREATE_ASSETS):
        conn.execute(sql(statement, t))
    if counts:
        conn.execute(sql(CREATE_COUNTS, t))
        conn.execute(sql(CREATE_DURATIONS, t))


def _create_indexes(conn: sqlite3.Connection, t: Tables) -> None:
    for statement in CREATE_INDEXES:
        conn.execute(sql(statement, t))


def setup(conn: sqlite3.Connection, t: Tables) -> None:
    _create_tables(conn, t)
    _create_indexes(conn, t)


def reset(conn: sqlite3.Connection, t: Tables) -> None:
    for table in (t.events, t.transformations, t.assets, t.counts, t.durations):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"DROP TABLE IF EXISTS temp.{t.stage}")


def bulk_setup(conn: sqlite3.Connection, t: Tables, counts: bool = True) -> None:
    """Tables without secondary indexes, plus a TEMP stage of each event's wide fields.

    The events table holds what the merge sorts by; the stage holds, by position, the
    values `finish` picks from the few events a min/max designates.
    """
    _create_tables(conn, t, counts)
    conn.execute(f"DROP TABLE IF EXISTS temp.{t.stage}")
    conn.execute(f"CREATE TEMP TABLE {t.stage} {STAGE_COLUMNS}")


def apply(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Fold a batch: add its event rows, merge them into their transformations, recount
    assets, and move the touched transformations' counts and durations by their change
    (at every grain)."""
    _extract_batch(conn, t, events)
    for table in ("stats_delta", "stats_delta_grains"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    conn.execute(sql(DELTA_BEFORE, t))
    _merge(conn, t)
    conn.execute(sql(DELTA_AFTER, t))
    conn.execute(DELTA_GRAINS)
    for statement in APPLY_DELTA:
        conn.execute(sql(statement, t))
    conn.execute("DROP TABLE temp.stats_delta_grains")
    conn.execute("DROP TABLE temp.stats_delta")
    conn.execute("DROP TABLE temp.timeline_rows")


def _merge(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(sql(MERGE, t))
    conn.execute(sql(ASSETS_OF_BATCH, t))


def _setup_without_counts(conn: sqlite3.Connection, t: Tables) -> None:
    _create_tables(conn, t, counts=False)
    _create_indexes(conn, t)


def _apply_without_counts(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    _extract_batch(conn, t, events)
    _merge(conn, t)
    conn.execute("DROP TABLE temp.timeline_rows")


def load(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Bulk path of a rebuild: append event rows and staged fields; `finish` does the rest."""
    _extract_batch(conn, t, events)
    conn.execute(f"INSERT INTO temp.{t.stage} SELECT {_STAGED} FROM temp.timeline_rows")
    conn.execute("DROP TABLE temp.timeline_rows")


def bulk_extract(
    conn: sqlite3.Connection, source: str, schema: str, after: int, until: int
) -> None:
    """Parse `source`'s handled events in (after, until] into table `rows` of `schema`.

    Runs on any connection that can read `source` (a rebuild runs it on worker
    connections, beside the one that writes the tables). The table has every column
    of ROWS and is written once, straight from the parse: `bulk_sql` picks the events
    table's columns and the stage's from it. Raises MalformedBody.
    """
    _run(
        conn,
        f"CREATE TABLE {schema}.rows AS " + sql(ROWS, source=source),
        {"after": int(after), "until": int(until)},
        source,
    )


def bulk_sql(conn: sqlite3.Connection, t: Tables, schema: str) -> int:
    """`load` for the table `bulk_extract` made in `schema`; returns how many events."""
    conn.execute(f"INSERT INTO {t.events} SELECT {_EVENTS} FROM {schema}.rows")
    count = conn.execute("SELECT changes()").fetchone()[0]
    conn.execute(f"INSERT INTO temp.{t.stage} SELECT {_STAGED} FROM {schema}.rows")
    return count


def finish(conn: sqlite3.Connection, t: Tables, counts: bool = True) -> None:
    """Index the events, merge them per transformation in that index's order, count
    assets and the overview's aggregates (at every grain), then build the other indexes.

    The aggregates are counted from the merged transformations on other connections
    (`stats_aside`), beside the assets and indexes: this commits the merge first (the
    generation is served only from the swap) and leaves `conn` in a new transaction.
    """
    for table in (t.transformations, t.assets, *((t.counts, t.durations) if counts else ())):
        conn.execute(f"DELETE FROM {table}")
    with sorting(conn):
        conn.execute(sql(CREATE_INDEXES[0], t))  # the events' (asset, tkey, ...) index
    conn.execute(sql(BULK_MERGE, t))
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
    aside = stats_aside.start(conn, t, timeout) if counts else None
    try:
        if aside is not None:
            conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql(ASSETS_ALL, t))
        with sorting(conn):
            if counts and aside is None:
                for statement in STATS_ALL:
                    conn.execute(sql(statement, t))
            _create_indexes(conn, t)
        if aside is not None:
            conn.execute("COMMIT")
            aside.copy_into(conn)
            conn.execute("BEGIN IMMEDIATE")  # the rebuild's own, which commits it
    finally:
        if aside is not None:
            aside.close()


TIMELINE = Projection(
    name="timeline",
    version=VERSION,
    handles=HANDLES,
    setup=setup,
    reset=reset,
    apply=apply,
    load=load,
    finish=finish,
    bulk_setup=bulk_setup,
    bulk_extract=bulk_extract,
    bulk_sql=bulk_sql,
    table_names=("events", "transformations", "assets", "stage", "counts", "durations"),
    poison=(MalformedBody,),
)


def timeline_projection(counts: bool = True) -> Projection:
    """TIMELINE, or (`counts=False`) the same fold without the overview's counts tables.

    The variant exists to measure what the counts cost a rebuild (bench/rebuild.py);
    `stats` cannot read a read model it built, so it is never registered.
    """
    if counts:
        return TIMELINE
    return replace(
        TIMELINE,
        setup=_setup_without_counts,
        apply=_apply_without_counts,
        bulk_setup=lambda conn, t: bulk_setup(conn, t, counts=False),
        finish=lambda conn, t: finish(conn, t, counts=False),
    )
