"""The timeline projection: per asset, its transformation requests and their events.

`TIMELINE` is the `Projection` to register. Tables (generation g):

- `timeline_events_g`: one row per video event, keyed by log position, with the
  fields the fold needs pulled out of the body. It is also the asset → positions index.
- `timeline_transformations_g`: one row per (asset, transformation key), computed
  from that transformation's event rows by one set-based statement.
- `timeline_assets_g`: one row per asset, computed from its transformations.

Order independence comes from computing every derived row from the *set* of event
rows with min/max over `ord` (created_at then position), never from arrival order,
so a rebuild and any sequence of incremental batches produce identical tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from store import Event

from .framework import Projection, Tables

PREFIX = "video.transformation."
HANDLES = (PREFIX + "accepted", PREFIX + "ready", PREFIX + "error")
VERSION = 1

_ORD_DIGITS = 15


def asset_key(url: str) -> str:
    """The identity of an asset URL: `http://` and `https://` forms of it are the same asset."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return "//" + rest
    return url


def ord_key(created_at: str, position: int) -> str:
    """Sort key of an event: created_at, then log position (never arrival)."""
    return f"{created_at}{position:0{_ORD_DIGITS}d}"


def _dump(value: object) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def event_row(event: Event) -> tuple | None:
    """The `timeline_events` row of one event; None when it names no asset.

    Raises on a body that is not a JSON object (a poison event).
    """
    doc = orjson.loads(event.body)
    data = doc.get("data") or {}
    asset_url = (data.get("asset") or {}).get("url")
    if not isinstance(asset_url, str) or not asset_url:
        return None
    request = doc.get("request") or {}
    request_id = request.get("x_request_id")
    if not isinstance(request_id, str) or not request_id:
        request_id = None
    tkey = "r:" + request_id if request_id else "e:" + event.id
    transformation = data.get("transformation") or {}
    output = transformation.get("output") or {}
    error = transformation.get("error") or {}
    return (
        event.position,
        event.id,
        event.type.removeprefix(PREFIX),
        event.created_at,
        ord_key(event.created_at, event.position),
        asset_key(asset_url),
        asset_url,
        tkey,
        request_id,
        request.get("url"),
        transformation.get("type"),
        _dump(transformation.get("options")),
        output.get("url"),
        _dump(output.get("video_metadata")),
        _dump(doc.get("timings")),
        error.get("reason"),
    )


_EVENT_COLUMNS = (
    "position, event_id, etype, created_at, ord, asset, asset_url, tkey, request_id, "
    "request_url, kind, options, output_url, video_metadata, timings, error_reason"
)


def _create_tables(conn: sqlite3.Connection, t: Tables) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {t.events} (position INTEGER PRIMARY KEY, "
        "event_id TEXT NOT NULL, etype TEXT NOT NULL, created_at TEXT NOT NULL, "
        "ord TEXT NOT NULL, asset TEXT NOT NULL, asset_url TEXT NOT NULL, tkey TEXT NOT NULL, "
        "request_id TEXT, request_url TEXT, kind TEXT, options TEXT, output_url TEXT, "
        "video_metadata TEXT, timings TEXT, error_reason TEXT)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {t.transformations} (asset TEXT NOT NULL, "
        "tkey TEXT NOT NULL, url TEXT NOT NULL, request_id TEXT, request_url TEXT, kind TEXT, "
        "options TEXT, status TEXT NOT NULL, accepted_at TEXT, ready_at TEXT, error_at TEXT, "
        "error_reason TEXT, output_url TEXT, video_metadata TEXT, timings TEXT, "
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
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.events}_asset ON {t.events} (asset, tkey, ord)")
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


def _position_of(ord_column: str) -> str:
    return f"CAST(substr({ord_column}, -{_ORD_DIGITS}) AS INTEGER)"


# Every derived column is a min/max over the transformation's event rows, or read
# from the one event such a min/max designates: the set decides, not the order.
_TRANSFORMATIONS_SQL = """
INSERT OR REPLACE INTO {tr} (asset, tkey, url, request_id, request_url, kind, options, status,
    accepted_at, ready_at, error_at, error_reason, output_url, video_metadata, timings,
    first_at, first_ord, last_at, last_ord, events)
SELECT g.asset, g.tkey, i.asset_url, i.request_id, i.request_url, i.kind, i.options,
    coalesce(t.etype, 'accepted'), g.accepted_at, g.ready_at, g.error_at, e.error_reason,
    r.output_url, r.video_metadata, r.timings, g.first_at, g.first_ord, g.last_at, g.last_ord,
    g.n
FROM (
    SELECT asset, tkey, count(*) AS n, min(created_at) AS first_at, min(ord) AS first_ord,
        max(created_at) AS last_at, max(ord) AS last_ord,
        min(CASE WHEN etype = 'accepted' THEN created_at END) AS accepted_at,
        min(CASE WHEN etype = 'ready' THEN created_at END) AS ready_at,
        min(CASE WHEN etype = 'error' THEN created_at END) AS error_at,
        coalesce(min(CASE WHEN etype = 'accepted' THEN ord END), min(ord)) AS info_ord,
        max(CASE WHEN etype <> 'accepted' THEN ord END) AS term_ord,
        max(CASE WHEN etype = 'ready' THEN ord END) AS ready_ord,
        max(CASE WHEN etype = 'error' THEN ord END) AS error_ord
    FROM {ev} WHERE {where} GROUP BY asset, tkey
) AS g
JOIN {ev} AS i ON i.position = {info_pos}
LEFT JOIN {ev} AS t ON t.position = {term_pos}
LEFT JOIN {ev} AS r ON r.position = {ready_pos}
LEFT JOIN {ev} AS e ON e.position = {error_pos}
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


def _transformations_sql(t: Tables, where: str) -> str:
    return _TRANSFORMATIONS_SQL.format(
        tr=t.transformations,
        ev=t.events,
        where=where,
        info_pos=_position_of("g.info_ord"),
        term_pos=_position_of("g.term_ord"),
        ready_pos=_position_of("g.ready_ord"),
        error_pos=_position_of("g.error_ord"),
    )


def _insert_events(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> list[tuple]:
    rows = [row for row in map(event_row, events) if row is not None]
    # OR IGNORE: a position is one event; seeing it again (a replayed batch) changes nothing.
    conn.executemany(
        f"INSERT OR IGNORE INTO {t.events} ({_EVENT_COLUMNS}) VALUES ({','.join('?' * 16)})",
        rows,
    )
    return rows


def apply(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Fold a batch: add its event rows, then recompute the rows they touch."""
    rows = _insert_events(conn, t, events)
    keys = sorted({(row[5], row[7]) for row in rows})
    conn.executemany(_transformations_sql(t, "asset = ? AND tkey = ?"), keys)
    assets = sorted({(asset,) for asset, _ in keys})
    conn.executemany(
        _ASSETS_SQL.format(assets=t.assets, tr=t.transformations, where="asset = ?"), assets
    )


def load(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """Bulk path of a rebuild: event rows only; `finish` derives the rest at once."""
    _insert_events(conn, t, events)


def bulk_setup(conn: sqlite3.Connection, t: Tables) -> None:
    _create_tables(conn, t)


def finish(conn: sqlite3.Connection, t: Tables) -> None:
    """Index the loaded event rows, then derive every transformation and asset in two statements."""
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.events}_asset ON {t.events} (asset, tkey, ord)")
    conn.execute(f"DELETE FROM {t.transformations}")
    conn.execute(f"DELETE FROM {t.assets}")
    conn.execute(_transformations_sql(t, "1"))
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
)
