"""The timeline projection: per asset, its transformation requests and their events.

`TIMELINE` is the `Projection` to register. Tables (generation g):

- `timeline_events_g`: one row per video event (position, id, type, created_at,
  `ord`, asset key, transformation key). It is also the asset → positions index.
- `timeline_transformations_g`: one row per (asset, transformation key), each event
  merged in by an UPSERT whose every column is a min/max by `ord` (created_at, then
  log position) or comes from the event such a min/max designates.
- `timeline_assets_g`: one row per asset, counted from its transformations.

Because the merge is order-independent, a rebuild and any sequence of incremental
batches, whatever order events arrived in, produce identical tables row for row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from store import Event

from .framework import Projection, Tables

PREFIX = "video.transformation."
HANDLES = (PREFIX + "accepted", PREFIX + "ready", PREFIX + "error")
VERSION = 1


def asset_key(url: str) -> str:
    """The identity of an asset URL: `http://` and `https://` forms of it are the same asset."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return "//" + rest
    return url


# Fields are read from the bodies by SQLite's JSON functions, for catch-up and rebuild
# alike: no Python per event, and the same extraction whatever path an event takes into
# the tables. SQLite caches the parse of a body across the calls of one row, but each
# call still walks its path and renders its value, so calls are kept few: one per
# field where one suffices, and fields a type never uses are not read for it.
def _text(path: str) -> str:
    """A JSON string at `path`, or NULL when it is absent, empty or not a string."""
    return f"CASE WHEN json_type(j, '{path}') = 'text' THEN nullif(j ->> '{path}', '') END"


def _json(path: str) -> str:
    """The JSON text of the value at `path`; NULL when absent or null."""
    return f"nullif(j -> '{path}', 'null')"


def _only(etype: str, expr: str) -> str:
    return f"CASE WHEN type = '{PREFIX}{etype}' THEN {expr} END"


# Raw events (position, id, type, created_at, body) of a source table → one row per
# event naming an asset, with every column the events table and the merge need.
# `LIMIT -1 OFFSET 0` keeps the inner query from being flattened into the outer one,
# which would evaluate `url` and `rid` (three JSON calls each) once per reference.
_ROWS_SQL = f"""
SELECT position, event_id, etype, created_at, ord,
    CASE WHEN lower(substr(url, 1, 7)) = 'http://' THEN '//' || substr(url, 8)
         WHEN lower(substr(url, 1, 8)) = 'https://' THEN '//' || substr(url, 9)
         ELSE url END AS asset,
    CASE WHEN rid IS NULL THEN 'e:' || event_id ELSE 'r:' || rid END AS tkey,
    url, rid, rurl, kind, options, out_url, vm, timings, reason
FROM (
    SELECT position, id AS event_id, substr(type, {len(PREFIX) + 1}) AS etype, created_at,
        created_at || printf('%015d', position) AS ord,
        {_text("$.data.asset.url")} AS url,
        {_text("$.request.x_request_id")} AS rid,
        j ->> '$.request.url' AS rurl,
        j ->> '$.data.transformation.type' AS kind,
        {_json("$.data.transformation.options")} AS options,
        {_only("ready", "j ->> '$.data.transformation.output.url'")} AS out_url,
        {_only("ready", _json("$.data.transformation.output.video_metadata"))} AS vm,
        {_only("ready", _json("$.timings"))} AS timings,
        {_only("error", "j ->> '$.data.transformation.error.reason'")} AS reason
    FROM (SELECT position, id, type, created_at, CAST(body AS TEXT) AS j FROM {{source}} WHERE {{where}})
    LIMIT -1 OFFSET 0
)
WHERE url IS NOT NULL
"""

# The merge row of one event (see _MERGE_SQL), in _MERGE_COLUMNS order.
_MERGE_SELECT = """
SELECT asset, tkey, url, rid AS request_id, rurl AS request_url, kind,
    options,
    (CASE WHEN etype = 'accepted' THEN '0' ELSE '1' END) || ord AS info_key,
    etype AS status, CASE WHEN etype <> 'accepted' THEN ord END AS term_ord,
    CASE WHEN etype = 'accepted' THEN created_at END AS accepted_at,
    CASE WHEN etype = 'ready' THEN created_at END AS ready_at,
    CASE WHEN etype = 'error' THEN created_at END AS error_at,
    CASE WHEN etype = 'ready' THEN ord END AS ready_ord,
    CASE WHEN etype = 'ready' THEN out_url END AS output_url,
    CASE WHEN etype = 'ready' THEN vm END AS video_metadata,
    CASE WHEN etype = 'ready' THEN timings END AS timings,
    CASE WHEN etype = 'error' THEN ord END AS error_ord,
    CASE WHEN etype = 'error' THEN reason END AS error_reason,
    created_at AS first_at, ord AS first_ord, created_at AS last_at, ord AS last_ord
FROM {rows}
"""

_BATCH = "temp.timeline_batch"


class MalformedBody(ValueError):
    """A body SQLite's JSON functions cannot read: a poison event."""


def _run(conn: sqlite3.Connection, sql: str, params: Sequence = ()) -> None:
    try:
        conn.execute(sql, params)
    except sqlite3.OperationalError as exc:
        if "JSON" in str(exc):
            raise MalformedBody(str(exc)) from None
        raise


def _stage_batch(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    """Put a batch of raw events where the extraction SQL reads them."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH.split('.')[1]} (position INTEGER PRIMARY KEY, "
        "id TEXT, type TEXT, created_at TEXT, body BLOB)"
    )
    conn.execute(f"DELETE FROM {_BATCH}")
    conn.executemany(
        f"INSERT INTO {_BATCH} VALUES (?,?,?,?,?)",
        [(e.position, e.id, e.type, e.created_at, e.body) for e in events],
    )


_EVENTS_COLUMNS = (
    "(position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, etype TEXT NOT NULL, "
    "created_at TEXT NOT NULL, ord TEXT NOT NULL, asset TEXT NOT NULL, tkey TEXT NOT NULL)"
)
_WIDE = "url, rid, rurl, kind, options, out_url, vm, timings, reason"
_STAGE_COLUMNS = f"(position INTEGER PRIMARY KEY, {_WIDE})"


def _create_tables(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {t.events} {_EVENTS_COLUMNS}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {t.transformations} (asset TEXT NOT NULL, "
        "tkey TEXT NOT NULL, url TEXT NOT NULL, request_id TEXT, request_url TEXT, kind TEXT, "
        "options TEXT, info_key TEXT NOT NULL, status TEXT NOT NULL, term_ord TEXT, "
        "accepted_at TEXT, ready_at TEXT, error_at TEXT, ready_ord TEXT, output_url TEXT, "
        "video_metadata TEXT, timings TEXT, error_ord TEXT, error_reason TEXT, "
        "first_at TEXT NOT NULL, first_ord TEXT NOT NULL, last_at TEXT NOT NULL, "
        "last_ord TEXT NOT NULL, events INTEGER NOT NULL, "
        "PRIMARY KEY (asset, tkey)) WITHOUT ROWID"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {t.assets} (asset TEXT PRIMARY KEY, url TEXT NOT NULL, "
        "first_at TEXT NOT NULL, last_at TEXT NOT NULL, transformations INTEGER NOT NULL, "
        "ready INTEGER NOT NULL, error INTEGER NOT NULL, pending INTEGER NOT NULL, "
        "events INTEGER NOT NULL) WITHOUT ROWID"
    )


def _create_indexes(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.events}_asset ON {t.events} (asset, ord)")
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {t.transformations}_status "
        f"ON {t.transformations} (status, last_at)"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.assets}_last ON {t.assets} (last_at, asset)")


def setup(conn: sqlite3.Connection, t: Tables) -> None:
    _create_tables(conn, t)
    _create_indexes(conn, t)


def reset(conn: sqlite3.Connection, t: Tables) -> None:
    for table in (t.events, t.transformations, t.assets):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"DROP TABLE IF EXISTS temp.{t.stage}")


def bulk_setup(conn: sqlite3.Connection, t: Tables) -> None:
    """Tables without secondary indexes, plus a TEMP stage of each event's wide fields.

    The events table holds what the merge sorts by; the stage holds, by position, the
    values `finish` picks from the few events a min/max designates.
    """
    _create_tables(conn, t)
    conn.execute(f"DROP TABLE IF EXISTS temp.{t.stage}")
    conn.execute(f"CREATE TEMP TABLE {t.stage} {_STAGE_COLUMNS}")


def _newer(ord_column: str, columns: Sequence[str]) -> str:
    """SET clauses taking `columns` from the incoming row when its `ord_column` is later."""
    return ", ".join(
        f"{c} = CASE WHEN excluded.{ord_column} > coalesce({ord_column}, '') "
        f"THEN excluded.{c} ELSE {c} END"
        for c in columns
    )


def _extreme(fn: str, columns: Sequence[str]) -> str:
    """SET clauses keeping the min or max of old and incoming values, NULL meaning none."""
    return ", ".join(f"{c} = coalesce({fn}({c}, excluded.{c}), {c}, excluded.{c})" for c in columns)


_INFO = ("url", "request_id", "request_url", "kind", "options")
_MERGE_COLUMNS = (
    "asset, tkey, url, request_id, request_url, kind, options, info_key, status, term_ord, "
    "accepted_at, ready_at, error_at, ready_ord, output_url, video_metadata, timings, "
    "error_ord, error_reason, first_at, first_ord, last_at, last_ord"
)

# One event merged into its transformation's row. Every column is a min or max over
# the events seen, or taken from the event such a min/max designates (ties are
# impossible: ord ends with the log position), so the merge is commutative and
# associative: any order or batching of the same events gives the same row.
_MERGE_SQL = f"""
INSERT INTO {{tr}} ({_MERGE_COLUMNS}, events)
SELECT {_MERGE_COLUMNS}, 1 FROM {{merge_rows}} WHERE true
ON CONFLICT (asset, tkey) DO UPDATE SET
    {", ".join(f"{c} = CASE WHEN excluded.info_key < info_key THEN excluded.{c} ELSE {c} END" for c in _INFO)},
    {_newer("term_ord", ["status"])},
    {_newer("ready_ord", ["output_url", "video_metadata", "timings"])},
    {_newer("error_ord", ["error_reason"])},
    {_extreme("min", ["info_key", "accepted_at", "ready_at", "error_at", "first_at", "first_ord"])},
    {_extreme("max", ["term_ord", "ready_ord", "error_ord", "last_at", "last_ord"])},
    events = events + 1
"""

_ASSETS_SQL = """
INSERT OR REPLACE INTO {assets} (asset, url, first_at, last_at, transformations, ready, error,
    pending, events)
SELECT asset, (SELECT x.url FROM {tr} AS x WHERE x.asset = t.asset ORDER BY x.first_ord LIMIT 1),
    min(first_at), max(last_at), count(*), count(*) FILTER (WHERE status = 'ready'),
    count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE status = 'accepted'),
    sum(events)
FROM {tr} AS t WHERE {where} GROUP BY asset
"""


_HANDLED = "type IN (" + ", ".join(f"'{t}'" for t in HANDLES) + ")"


def _event_rows(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Extract the batch into temp.timeline_rows and append its rows to the events table."""
    _stage_batch(conn, events)
    _extract(conn, t, _BATCH, "1")


def _extract(conn: sqlite3.Connection, t: Tables, source: str, where: str) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.timeline_rows")
    _run(conn, "CREATE TEMP TABLE timeline_rows AS " + _ROWS_SQL.format(source=source, where=where))
    conn.execute(
        f"INSERT INTO {t.events} (position, event_id, etype, created_at, ord, asset, tkey) "
        "SELECT position, event_id, etype, created_at, ord, asset, tkey FROM temp.timeline_rows"
    )


_MERGE_ROWS = "(" + _MERGE_SELECT.format(rows="temp.timeline_rows") + ")"


def apply(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Fold a batch: add its event rows, merge them into their transformations, recount assets."""
    _event_rows(conn, t, events)
    conn.execute(_MERGE_SQL.format(tr=t.transformations, merge_rows=_MERGE_ROWS))
    conn.execute(
        _ASSETS_SQL.format(
            assets=t.assets,
            tr=t.transformations,
            where="asset IN (SELECT asset FROM temp.timeline_rows)",
        )
    )
    conn.execute("DROP TABLE temp.timeline_rows")


def load(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Bulk path of a rebuild: append event rows and staged fields; `finish` does the rest."""
    _event_rows(conn, t, events)
    conn.execute(f"INSERT INTO temp.{t.stage} SELECT position, {_WIDE} FROM temp.timeline_rows")
    conn.execute("DROP TABLE temp.timeline_rows")


def bulk_extract(
    conn: sqlite3.Connection, source: str, schema: str, after: int, until: int
) -> None:
    """Parse `source`'s handled events in (after, until] into tables `events` and `stage` of `schema`.

    Runs on any connection that can read `source` (a rebuild runs it on worker
    connections, beside the one that writes the tables). The two tables are declared
    exactly like the events table and the stage, so `bulk_sql` copies their records
    as they are (SQLite's transfer optimisation) instead of decoding and re-encoding
    them on the writing connection. Raises MalformedBody.
    """
    where = f"position > {int(after)} AND position <= {int(until)} AND {_HANDLED}"
    conn.execute("DROP TABLE IF EXISTS temp.extracted")
    _run(conn, "CREATE TEMP TABLE extracted AS " + _ROWS_SQL.format(source=source, where=where))
    conn.execute(f"CREATE TABLE {schema}.events {_EVENTS_COLUMNS}")
    conn.execute(
        f"INSERT INTO {schema}.events SELECT position, event_id, etype, created_at, ord, asset, "
        "tkey FROM temp.extracted"
    )
    conn.execute(f"CREATE TABLE {schema}.stage {_STAGE_COLUMNS}")
    conn.execute(f"INSERT INTO {schema}.stage SELECT position, {_WIDE} FROM temp.extracted")
    conn.execute("DROP TABLE temp.extracted")


def bulk_sql(conn: sqlite3.Connection, t: Tables, schema: str) -> int:
    """`load` for the tables `bulk_extract` made in `schema`; returns how many events."""
    conn.execute(f"INSERT INTO {t.events} SELECT * FROM {schema}.events")
    count = conn.execute("SELECT changes()").fetchone()[0]
    conn.execute(f"INSERT INTO temp.{t.stage} SELECT * FROM {schema}.stage")
    return count


def _at(ord_column: str) -> str:
    """The log position an `ord` (or `info_key`) ends with."""
    return f"CAST(substr({ord_column}, -15) AS INTEGER)"


# The merge of _MERGE_SQL done for all events at once: one sort of the narrow events
# table by (asset, tkey) computes every min/max; the values "from the event with the
# min/max X" are then read from the stage by that event's position (the last 15
# characters of an ord). Per group rather than per row: info_key (an accepted event's
# ord beats any other's), term_ord (the later of the last ready and last error) and
# the status (that of the latest terminal event).
_BULK_SQL = f"""
INSERT INTO {{tr}} ({_MERGE_COLUMNS}, events)
SELECT g.asset, g.tkey, i.url, i.rid, i.rurl, i.kind, i.options, info_key,
    CASE WHEN term_ord IS NULL THEN 'accepted' WHEN term_ord = ready_ord THEN 'ready'
         ELSE 'error' END,
    term_ord, accepted_at, ready_at, error_at, ready_ord, r.out_url, r.vm, r.timings,
    error_ord, e.reason, first_at, first_ord, last_at, last_ord, events
FROM (
    SELECT *, coalesce('0' || accepted_ord, '1' || first_ord) AS info_key,
        CASE WHEN ready_ord IS NULL THEN error_ord WHEN error_ord IS NULL THEN ready_ord
             ELSE max(ready_ord, error_ord) END AS term_ord
    FROM (
        SELECT asset, tkey,
            min(CASE WHEN etype = 'accepted' THEN ord END) AS accepted_ord,
            min(CASE WHEN etype = 'accepted' THEN created_at END) AS accepted_at,
            min(CASE WHEN etype = 'ready' THEN created_at END) AS ready_at,
            min(CASE WHEN etype = 'error' THEN created_at END) AS error_at,
            max(CASE WHEN etype = 'ready' THEN ord END) AS ready_ord,
            max(CASE WHEN etype = 'error' THEN ord END) AS error_ord,
            min(created_at) AS first_at, min(ord) AS first_ord, max(created_at) AS last_at,
            max(ord) AS last_ord, count(*) AS events
        FROM {{events}} GROUP BY asset, tkey
    )
) AS g
JOIN temp.{{stage}} AS i ON i.position = {_at("info_key")}
LEFT JOIN temp.{{stage}} AS r ON r.position = {_at("ready_ord")}
LEFT JOIN temp.{{stage}} AS e ON e.position = {_at("error_ord")}
"""


def finish(conn: sqlite3.Connection, t: Tables) -> None:
    """Merge the staged rows per transformation, count assets, then build the indexes."""
    conn.execute(f"DELETE FROM {t.transformations}")
    conn.execute(f"DELETE FROM {t.assets}")
    conn.execute(_BULK_SQL.format(tr=t.transformations, events=t.events, stage=t.stage))
    conn.execute(f"DROP TABLE temp.{t.stage}")
    conn.execute(_ASSETS_SQL.format(assets=t.assets, tr=t.transformations, where="1"))
    _create_indexes(conn, t)


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
    table_names=("events", "transformations", "assets", "stage"),
    poison=(MalformedBody,),
)
