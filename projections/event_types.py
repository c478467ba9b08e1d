"""The event-types projection: every event of the log, of any type, counted per bucket.

`EVENT_TYPES` is the `Projection` to register. One table (generation g):

- `event_types_counts_g`: (grain, bucket, type) → n, the bucket being the start of the
  5-minute bucket (grain '5m'), the hour ('1h') or the day ('1d') of the event's own
  `created_at` (`timeline_stats_sql.BUCKET`), so a range reads the coarsest rows that
  tile it. Only type and created_at are read, never a body, so no event is poison here.

Counts only add, so any batching or order of the same events gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from store import Event
from store.sqlite_engine import sqlite3

from .framework import Projection, Tables
from .timeline_stats_sql import BUCKET, GRAINS, at_grain

VERSION = 2  # 2: per hour and per day too (the `grain` column)

CREATE = """
CREATE TABLE IF NOT EXISTS {counts} (
    grain TEXT NOT NULL, bucket TEXT NOT NULL, type TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (grain, bucket, type)
) WITHOUT ROWID
"""

# (bucket, type, n) of {source}'s events in (after, until].
COUNT = (
    "SELECT "
    + BUCKET.format(at="created_at")
    + """ AS bucket, type, count(*) AS n
FROM {source} WHERE position > :after AND position <= :until
GROUP BY bucket, type"""
)

# The 5-minute counts of {rows} added at every grain.
ADD = (
    """
INSERT INTO {counts} (grain, bucket, type, n)
SELECT grain, """
    + at_grain("bucket")
    + """, type, sum(n) FROM {rows}, """
    + GRAINS
    + """
GROUP BY 1, 2, type
ON CONFLICT (grain, bucket, type) DO UPDATE SET n = n + excluded.n
"""
)

_BATCH = "event_types_batch"


def setup(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(CREATE.format(counts=t.counts))


def reset(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {t.counts}")


def apply(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Add a batch's events to their (grain, bucket, type) counts."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH} "
        "(position INTEGER PRIMARY KEY, type TEXT, created_at TEXT)"
    )
    conn.execute(f"DELETE FROM temp.{_BATCH}")
    conn.executemany(
        f"INSERT INTO temp.{_BATCH} VALUES (?, ?, ?)",
        [(e.position, e.type, e.created_at) for e in events],
    )
    positions = [e.position for e in events] or [0]
    conn.execute("DROP TABLE IF EXISTS temp.event_types_rows")
    conn.execute(
        "CREATE TEMP TABLE event_types_rows AS " + COUNT.format(source=f"temp.{_BATCH}"),
        {"after": min(positions) - 1, "until": max(positions)},
    )
    conn.execute(ADD.format(counts=t.counts, rows="temp.event_types_rows"))
    conn.execute("DROP TABLE temp.event_types_rows")


def bulk_extract(
    conn: sqlite3.Connection, source: str, schema: str, after: int, until: int
) -> None:
    """Count `source`'s events in (after, until] into table `rows` of `schema`."""
    conn.execute(
        f"CREATE TABLE {schema}.rows AS " + COUNT.format(source=source),
        {"after": int(after), "until": int(until)},
    )


def bulk_sql(conn: sqlite3.Connection, t: Tables, schema: str) -> int:
    """Add the counts `bulk_extract` made in `schema`; returns how many events they count."""
    conn.execute(ADD.format(counts=t.counts, rows=f"{schema}.rows"))
    return conn.execute(f"SELECT coalesce(sum(n), 0) FROM {schema}.rows").fetchone()[0]


EVENT_TYPES = Projection(
    name="event_types",
    version=VERSION,
    handles=None,
    setup=setup,
    reset=reset,
    apply=apply,
    bulk_extract=bulk_extract,
    bulk_sql=bulk_sql,
    table_names=("counts",),
)
