"""Listings across assets, keyset-paginated (pass back `next_cursor`).

- `assets(db, status=, since=, limit=, cursor=, now=)`: assets, newest activity first.
- `transformations(db, status=, reason=, limit=, cursor=, now=)`: across assets.
- `asset_positions(db, asset_url, after=0, limit=None, types=, since=)`: log
  positions of an asset's events, one page of them.

Statuses are `accepted`, `ready`, `error` and `stuck` (`fields.STUCK` at `now`, None
meaning the real time): a stuck transformation is listed with status `stuck` and is
not counted as accepted.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson

from .db import ProjectionDB
from .fields import STUCK, STUCK_AFTER, has_asset, query, served, stuck_cutoff, to_time
from .framework import AssetNotFound, InvalidQuery
from .video_timeline import asset_key

STATUSES = ("accepted", "ready", "error", "stuck")

# Filters the listings add (ANDed) to their WHERE, by status.
_ASSET_STATUS = {
    "ready": "ready > 0",
    "error": "error > 0",
    "stuck": "stuck > 0",
    "accepted": "pending > stuck",
}
_TRANSFORMATION_STATUS = {
    "ready": "status = 'ready'",
    "error": "status = 'error'",
    "stuck": STUCK,
    "accepted": f"status = 'accepted' AND NOT {STUCK}",
}

ASSETS = """
SELECT asset, url, first_at, last_at, transformations, ready, error, pending, stuck, events
FROM (
    SELECT a.*,
        (SELECT count(*) FROM {transformations} WHERE asset = a.asset AND {stuck}) AS stuck
    FROM {assets} AS a
)
WHERE {where}
ORDER BY last_at DESC, asset DESC
LIMIT :limit
"""

# A listed transformation is the timeline's object with `stuck` as its status.
TRANSFORMATIONS = """
SELECT asset, tkey, last_at, url,
    json_set({transformation}, '$.status', CASE WHEN {stuck} THEN 'stuck' ELSE status END)
FROM {transformations}
WHERE {where}
ORDER BY last_at DESC, asset DESC, tkey DESC
LIMIT :limit
"""

POSITIONS = """
SELECT position FROM {events}
WHERE asset = :asset AND position > :after AND created_at >= :since
    AND (:types IS NULL OR 'video.transformation.' || etype IN (SELECT value FROM json_each(:types)))
ORDER BY position
LIMIT :limit
"""


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
    params = {"cutoff": stuck_cutoff(now, stuck_after), "limit": limit + 1}
    where = ["true"]
    if since is not None:
        where.append("last_at >= :since")
        params["since"] = to_time(since)
    if cursor is not None:
        params["c_last"], params["c_asset"] = _decode_cursor(cursor, 2)
        where.append("(last_at, asset) < (:c_last, :c_asset)")
    if status is not None:
        where.append(_ASSET_STATUS[status])
    with db.read() as conn:
        found = served(conn)
        if found is None:
            return {"assets": [], "next_cursor": None}
        statement = query(ASSETS, found[0], where=" AND ".join(where))
        rows = conn.execute(statement, params).fetchall()
    page = [
        {
            "asset": url,
            "first_at": first_at,
            "last_activity": last_at,
            "transformations": total,
            "events": events,
            "counts": {"accepted": pending - stuck, "stuck": stuck, "ready": ready, "error": error},
        }
        for _, url, first_at, last_at, total, ready, error, pending, stuck, events in rows[:limit]
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
    since: str | datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> dict:
    """Transformations across assets, latest activity first, optionally by status and reason.

    `since` keeps those with an event at or after that time (as `assets` does).
    Returns {"transformations": [... each with "asset" ...], "next_cursor"}.
    """
    _check(status, limit)
    params = {"cutoff": stuck_cutoff(now, stuck_after), "limit": limit + 1}
    where = ["true"]
    if status is not None:
        where.append(_TRANSFORMATION_STATUS[status])
    if reason is not None:
        where.append("error_reason = :reason")
        params["reason"] = reason
    if since is not None:
        where.append("last_at >= :since")
        params["since"] = to_time(since)
    if cursor is not None:
        params["c_last"], params["c_asset"], params["c_tkey"] = _decode_cursor(cursor, 3)
        where.append("(last_at, asset, tkey) < (:c_last, :c_asset, :c_tkey)")
    with db.read() as conn:
        found = served(conn)
        if found is None:
            return {"transformations": [], "next_cursor": None}
        statement = query(TRANSFORMATIONS, found[0], where=" AND ".join(where))
        rows = conn.execute(statement, params).fetchall()
    page = [{"asset": url, **orjson.loads(obj)} for _, _, _, url, obj in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last_asset, last_tkey, last_at = rows[limit - 1][:3]
        next_cursor = _encode_cursor([last_at, last_asset, last_tkey])
    return {"transformations": page, "next_cursor": next_cursor}


def asset_positions(
    db: ProjectionDB,
    asset_url: str,
    *,
    after: int = 0,
    limit: int | None = None,
    types: Sequence[str] | None = None,
    since: str | None = None,
) -> list[int]:
    """Log positions of an asset's events after `after`, ascending, at most `limit` of them.

    `types` keeps events of those types, `since` those created at or after it (the
    log's created_at text). Only the page is read: a caller loads just these events.
    Raises AssetNotFound for an asset never seen.
    """
    key = asset_key(asset_url)
    params = {
        "asset": key,
        "after": after,
        "since": since or "",
        "types": orjson.dumps(list(types)).decode() if types else None,
        "limit": -1 if limit is None else limit,
    }
    with db.read() as conn:
        found = served(conn)
        if found is None:
            raise AssetNotFound(asset_url)
        tables = found[0]
        if not has_asset(conn, tables, key):
            raise AssetNotFound(asset_url)
        return [p for (p,) in conn.execute(query(POSITIONS, tables), params)]


_SEARCH = """
SELECT url, request_id, status, last_at FROM {transformations}
WHERE request_id = :q OR instr(lower(url), lower(:q)) > 0
ORDER BY last_at DESC, asset DESC, tkey DESC LIMIT :limit
"""


def search_transformations(db: ProjectionDB, text: str, *, limit: int = 50) -> list[dict]:
    """Transformations whose request id is `text` or whose asset URL contains it (any case).

    Newest activity first, at most `limit`; it scans the transformations table (no
    index serves a substring), bounded by `limit`. Empty text or no read model yet: [].
    Read in one transaction, so a rebuild's swap is seen whole or not at all.
    """
    text = text.strip()
    if not text:
        return []
    with db.read() as conn:
        current = served(conn)
        if current is None:
            return []
        tables, _ = current
        rows = conn.execute(
            _SEARCH.format(transformations=tables.transformations), {"q": text, "limit": limit}
        ).fetchall()
    return [
        {"asset": url, "request_id": request_id, "status": status, "last_at": last_at}
        for url, request_id, status, last_at in rows
    ]
