"""Read-side queries: plain functions of a `ProjectionDB`, returning JSON-ready dicts.

- `timeline(db, asset_url, as_of=None)`: one asset's transformations and events;
  `timeline_json` the same as JSON bytes, encoded by SQLite (what `GET /timeline` sends).
- `assets(db, status=, since=, limit=, cursor=, now=)`: assets, newest activity first.
- `transformations(db, status=, reason=, limit=, cursor=, now=)`: across assets.
- `asset_positions(db, asset_url, after=0, limit=None)`: log positions of an asset.
- `projection_status(db)`: checkpoint, lag and last error of every projection.

Each reads the served generation inside one read transaction, so a concurrent
rebuild's swap is seen whole or not at all. Statuses are `accepted`, `ready`,
`error` and, in `assets` and `transformations`, `stuck`: an `accepted` one whose
latest event is older than `stuck_after` at `now` (stuck ones are not counted as
accepted there). Lists are keyset-paginated: pass back `next_cursor`.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson

from .cache import TimelineCache
from .db import ProjectionDB, read_meta
from .framework import AssetNotFound, InvalidQuery, Tables
from .video_timeline import TIMELINE, asset_key

STUCK_AFTER = timedelta(minutes=15)
STATUSES = ("accepted", "ready", "error", "stuck")

_TR_COLUMNS = (
    "asset, tkey, url, request_id, request_url, kind, options, status, accepted_at, ready_at, "
    "error_at, error_reason, output_url, video_metadata, timings, first_at, last_at, events"
)


def to_time(value: datetime | str) -> str:
    """A time as the log writes created_at: UTC, milliseconds, Z. Naive means UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise InvalidQuery(f"not an ISO-8601 time: {value!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cutoff(now: datetime | str | None, stuck_after: timedelta | float) -> str:
    if not isinstance(stuck_after, timedelta):
        stuck_after = timedelta(seconds=stuck_after)
    moment = datetime.now(UTC) if now is None else datetime.fromisoformat(to_time(now))
    return to_time(moment - stuck_after)


def _served(conn: sqlite3.Connection) -> tuple[Tables, int] | None:
    meta = read_meta(conn, TIMELINE.name)
    return (TIMELINE.tables(meta.generation), meta.checkpoint) if meta else None


def _loads(text: str | None):
    return orjson.loads(text) if text is not None else None


def _ms_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds() * 1000)


def _transformation(row: Sequence) -> dict:
    (_asset, _tkey, _url, request_id, request_url, kind, options, status, accepted_at, ready_at,
     error_at, error_reason, output_url, metadata, timings, first_at, last_at, events) = row  # fmt: skip
    return {
        "request_id": request_id,
        "request_url": request_url,
        "kind": kind,
        "options": _loads(options),
        "status": status,
        "accepted_at": accepted_at,
        "ready_at": ready_at,
        "error_at": error_at,
        "error_reason": error_reason,
        "output_url": output_url,
        "video_metadata": _loads(metadata),
        "timings": _loads(timings),
        "accepted_to_ready_ms": _ms_between(accepted_at, ready_at),
        "first_at": first_at,
        "last_at": last_at,
        "event_count": events,
    }


# SQLite encodes every transformation and event as JSON (json_object, and json() to
# embed the stored JSON columns without a Python parse), with the GIL released while it
# runs, so concurrent readers share the cores; Python only splices each
# transformation's events into its object. julianday() differences are exact to well
# under a millisecond for created_at's millisecond times.
_TRANSFORMATIONS_JSON = """
SELECT tkey, url, json_object(
    'request_id', request_id, 'request_url', request_url, 'kind', kind,
    'options', json(options), 'status', status,
    'accepted_at', accepted_at, 'ready_at', ready_at, 'error_at', error_at,
    'error_reason', error_reason, 'output_url', output_url,
    'video_metadata', json(video_metadata), 'timings', json(timings),
    'accepted_to_ready_ms',
        CAST(round((julianday(ready_at) - julianday(accepted_at)) * 86400000.0) AS INTEGER),
    'first_at', first_at, 'last_at', last_at, 'event_count', events)
FROM {transformations} WHERE asset = ? ORDER BY first_ord
"""
_EVENTS_JSON = """
SELECT tkey, json_object('position', position, 'id', event_id,
    'type', 'video.transformation.' || etype, 'created_at', created_at)
FROM {events} WHERE asset = ? ORDER BY ord
"""


def read_timeline(conn: sqlite3.Connection, tables: Tables, key: str) -> tuple[str, bytes] | None:
    """The asset's display URL and its `transformations` as JSON bytes; None if it has no events."""
    events: dict[str, list[str]] = {}
    for tkey, event in conn.execute(_EVENTS_JSON.format(events=tables.events), (key,)):
        events.setdefault(tkey, []).append(event)
    rows = conn.execute(
        _TRANSFORMATIONS_JSON.format(transformations=tables.transformations), (key,)
    ).fetchall()
    if not rows:
        return None
    # Reopen each object SQLite closed, to append its events.
    items = ",".join(
        f'{obj[:-1]},"events":[{",".join(events.get(tkey, ()))}]}}' for tkey, _, obj in rows
    )
    return rows[0][1], f"[{items}]".encode()


def _document(url: str, position: int, transformations: bytes) -> bytes:
    """The `GET /timeline` answer, assembled around SQLite's JSON without re-parsing it."""
    return b"".join(
        (b'{"asset":', orjson.dumps(url), b',"position":', b"%d" % position,
         b',"transformations":', transformations, b"}")
    )  # fmt: skip


def _as_of_point(as_of: int | str | datetime) -> tuple[int | None, str | None]:
    if isinstance(as_of, bool):
        raise InvalidQuery("as_of must be a log position or an ISO-8601 time")
    if isinstance(as_of, int):
        return as_of, None
    if isinstance(as_of, str) and as_of.strip().isdigit():
        return int(as_of), None
    return None, to_time(as_of)


def timeline(db: ProjectionDB, asset_url: str, as_of: int | str | datetime | None = None) -> dict:
    """The transformations of an asset, each with its events in (created_at, position) order.

    `position` is the log position the answer reflects. With `as_of` (a log position,
    or a created_at time), the timeline is refolded from the log's bodies of the
    asset's events up to that point, with the projection's own apply. Raises
    AssetNotFound for an asset never seen (http and https forms are one asset).
    """
    return orjson.loads(timeline_json(db, asset_url, as_of))


def timeline_json(
    db: ProjectionDB,
    asset_url: str,
    as_of: int | str | datetime | None = None,
    *,
    cache: TimelineCache | None = None,
) -> bytes:
    """`timeline(...)` encoded as JSON bytes, built by SQLite: what `GET /timeline` sends.

    With a `cache`, the current timeline (no `as_of`) is reused while the asset has no
    new event in the served generation; `position` is always the current checkpoint.
    """
    key = asset_key(asset_url)
    with db.read() as conn:
        served = _served(conn)
        if served is None:
            raise AssetNotFound(asset_url)
        tables, checkpoint = served
        if as_of is None:
            found = _current(conn, tables, key, cache)
            if found is None:
                raise AssetNotFound(asset_url)
            return _document(found[0], checkpoint, found[1])
        positions = [
            p
            for (p,) in conn.execute(
                f"SELECT position FROM {tables.events} WHERE asset = ?", (key,)
            )
        ]
    if not positions:
        raise AssetNotFound(asset_url)
    until, moment = _as_of_point(as_of)
    if until is not None:
        checkpoint = min(checkpoint, max(until, 0))
    events = [
        e
        for e in db.store.get_positions([p for p in positions if p <= checkpoint])
        if moment is None or e.created_at <= moment
    ]
    url, folded = _refold(key, events) or (asset_url, b"[]")
    return _document(url, checkpoint, folded)


def _current(
    conn: sqlite3.Connection, tables: Tables, key: str, cache: TimelineCache | None
) -> tuple[str, bytes] | None:
    """read_timeline through the cache, stamped with the asset's event count (a PK lookup)."""
    if cache is None:
        return read_timeline(conn, tables, key)
    row = conn.execute(f"SELECT events FROM {tables.assets} WHERE asset = ?", (key,)).fetchone()
    if row is None:
        return None
    found = cache.get(tables.generation, key, row[0])
    if found is None:
        found = read_timeline(conn, tables, key)
        if found is not None:
            cache.put(tables.generation, key, row[0], *found)
    return found


def _refold(key: str, events) -> tuple[str, bytes] | None:
    """Fold events into throwaway in-memory tables with the projection's apply."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        tables = TIMELINE.tables(0)
        TIMELINE.setup(memory, tables)
        TIMELINE.apply(memory, tables, events)
        return read_timeline(memory, tables, key)
    finally:
        memory.close()


def asset_positions(
    db: ProjectionDB, asset_url: str, *, after: int = 0, limit: int | None = None
) -> list[int]:
    """Log positions of an asset's events, ascending, after `after`; AssetNotFound if none ever."""
    key = asset_key(asset_url)
    with db.read() as conn:
        served = _served(conn)
        if served is None:
            raise AssetNotFound(asset_url)
        tables, _ = served
        positions = sorted(
            p
            for (p,) in conn.execute(
                f"SELECT position FROM {tables.events} WHERE asset = ?", (key,)
            )
        )
    if not positions:
        raise AssetNotFound(asset_url)
    positions = [p for p in positions if p > after]
    return positions if limit is None else positions[:limit]


def _encode_cursor(values: Sequence) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def _decode_cursor(cursor: str, size: int) -> list:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        raise InvalidQuery("invalid cursor") from None
    if not isinstance(values, list) or len(values) != size:
        raise InvalidQuery("invalid cursor")
    return values


def _check(status: str | None, limit: int) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidQuery(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    if not 1 <= limit <= 1000:
        raise InvalidQuery("limit must be between 1 and 1000")


def assets(
    db: ProjectionDB,
    *,
    status: str | None = None,
    since: str | datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> dict:
    """Assets with a count of transformations per status, newest last activity first.

    `status` keeps assets having at least one transformation in it; `since` keeps
    those active at or after that time. Returns {"assets": [...], "next_cursor"}.
    """
    _check(status, limit)
    cutoff = _cutoff(now, stuck_after)
    since = to_time(since) if since is not None else None
    after = _decode_cursor(cursor, 2) if cursor is not None else None
    with db.read() as conn:
        served = _served(conn)
        if served is None:
            return {"assets": [], "next_cursor": None}
        t, _ = served
        stuck = (
            f"SELECT count(*) FROM {t.transformations} AS x WHERE x.asset = a.asset "
            "AND x.status = 'accepted' AND x.last_at < :cutoff"
        )
        where, params = ["1"], {"cutoff": cutoff, "limit": limit + 1}
        if since is not None:
            where.append("a.last_at >= :since")
            params["since"] = since
        if after is not None:
            params["c_last"], params["c_asset"] = after
            where.append("(a.last_at, a.asset) < (:c_last, :c_asset)")
        if status in ("ready", "error"):
            where.append(f"a.{status} > 0")
        elif status == "stuck":
            where.append(f"({stuck}) > 0")
        elif status == "accepted":
            where.append(f"a.pending > ({stuck})")
        rows = conn.execute(
            f"SELECT a.asset, a.url, a.first_at, a.last_at, a.transformations, a.ready, a.error, "
            f"a.pending, a.events, ({stuck}) FROM {t.assets} AS a WHERE {' AND '.join(where)} "
            "ORDER BY a.last_at DESC, a.asset DESC LIMIT :limit",
            params,
        ).fetchall()
    page = [
        {
            "asset": url,
            "first_at": first_at,
            "last_activity": last_at,
            "transformations": total,
            "events": events,
            "counts": {"accepted": pending - stuck, "stuck": stuck, "ready": ready, "error": error},
        }
        for _, url, first_at, last_at, total, ready, error, pending, events, stuck in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = _encode_cursor([rows[limit - 1][3], rows[limit - 1][0]])
    return {"assets": page, "next_cursor": next_cursor}


def transformations(
    db: ProjectionDB,
    *,
    status: str | None = None,
    reason: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> dict:
    """Transformations across assets, latest activity first, optionally by status and reason.

    Returns {"transformations": [... each with "asset" ...], "next_cursor"}.
    """
    _check(status, limit)
    cutoff = _cutoff(now, stuck_after)
    after = _decode_cursor(cursor, 3) if cursor is not None else None
    with db.read() as conn:
        served = _served(conn)
        if served is None:
            return {"transformations": [], "next_cursor": None}
        t, _ = served
        where, params = ["1"], {"cutoff": cutoff, "limit": limit + 1}
        if status in ("ready", "error"):
            where.append("status = :status")
            params["status"] = status
        elif status == "accepted":
            where.append("status = 'accepted' AND last_at >= :cutoff")
        elif status == "stuck":
            where.append("status = 'accepted' AND last_at < :cutoff")
        if reason is not None:
            where.append("error_reason = :reason")
            params["reason"] = reason
        if after is not None:
            params["c_last"], params["c_asset"], params["c_tkey"] = after
            where.append("(last_at, asset, tkey) < (:c_last, :c_asset, :c_tkey)")
        rows = conn.execute(
            f"SELECT {_TR_COLUMNS} FROM {t.transformations} WHERE {' AND '.join(where)} "
            "ORDER BY last_at DESC, asset DESC, tkey DESC LIMIT :limit",
            params,
        ).fetchall()
    page = []
    for row in rows[:limit]:
        item = {"asset": row[2], **_transformation(row)}
        if item["status"] == "accepted" and item["last_at"] < cutoff:
            item["status"] = "stuck"
        page.append(item)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode_cursor([last[16], last[0], last[1]])
    return {"transformations": page, "next_cursor": next_cursor}


def projection_status(db: ProjectionDB, names: Sequence[str] | None = None) -> list[dict]:
    """Every projection's version, checkpoint, lag behind the log and last error."""
    head = db.store.last_position()
    with db.read() as conn:
        rows = conn.execute("SELECT name FROM projection_meta ORDER BY name").fetchall()
        metas = [read_meta(conn, name) for (name,) in rows if names is None or name in names]
    return [
        {
            "name": m.name,
            "version": m.version,
            "generation": m.generation,
            "checkpoint": m.checkpoint,
            "log_position": head,
            "lag": max(head - m.checkpoint, 0),
            "error": None
            if m.error_message is None
            else {
                "position": m.error_position,
                "event_id": m.error_event_id,
                "message": m.error_message,
                "at": m.error_at,
                "attempts": m.error_attempts,
            },
        }
        for m in metas
    ]
