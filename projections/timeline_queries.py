"""One asset's timeline: `timeline(db, asset_url, as_of=None)` and `timeline_json`.

`timeline_json` is what `GET /timeline` sends: SQLite encodes every transformation
(`fields.TRANSFORMATION`) and event as JSON, with the GIL released while it runs, so
concurrent readers share the cores; Python only splices each transformation's events
into its object. `timeline()` is `orjson.loads(timeline_json(...))`, so the two
never differ.

Each transformation carries `stuck` (see `fields.STUCK`), judged at `now` (None:
the real time; for an `as_of` time, that time) minus `stuck_after`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

import orjson

from store.sqlite_engine import sqlite3

from .db import ProjectionDB, unavailable_on_error, version
from .fields import STUCK_AFTER, has_asset, query, served, stuck_cutoff, to_time
from .framework import AssetNotFound, InvalidQuery, Tables
from .video_timeline import TIMELINE, asset_key

if TYPE_CHECKING:  # the answer cache is the server's: it loads with the first one built
    from .cache import Cutoffs, TimelineCache

TRANSFORMATIONS_OF_ASSET = """
SELECT tkey, {transformation}
FROM {transformations}
WHERE asset = :asset
ORDER BY first_at, first_pos
"""

# The stuck cutoffs the flags of an asset's timeline hold for (see TimelineCache): after
# the latest last_at of its stuck transformations, up to the earliest of the others
# still accepted.
STUCK_CUTOFFS = """
SELECT max(last_at) FILTER (WHERE {stuck}), min(last_at) FILTER (WHERE NOT {stuck})
FROM {transformations}
WHERE asset = :asset AND status = 'accepted'
"""

EVENTS_OF_ASSET = """
SELECT tkey, json_object('position', position, 'id', event_id,
    'type', 'video.transformation.' || etype, 'created_at', created_at)
FROM {events}
WHERE asset = :asset
ORDER BY created_at, position
"""

# The positions an `as_of` refold reads: the asset's events up to a position and time.
POSITIONS_AS_OF = """
SELECT position FROM {events}
WHERE asset = :asset AND position <= :until AND (:moment IS NULL OR created_at <= :moment)
"""


class Timeline(NamedTuple):
    url: str  # the asset's URL as its earliest transformation wrote it
    transformations: bytes  # a JSON array


def read_timeline(
    conn: sqlite3.Connection, tables: Tables, key: str, cutoff: str
) -> Timeline | None:
    """The asset's transformations as JSON, stuck judged at `cutoff`; None if it has no events."""
    events: dict[str, list[str]] = {}
    for tkey, event in conn.execute(query(EVENTS_OF_ASSET, tables), {"asset": key}):
        if tkey in events:
            events[tkey].append(event)
        else:
            events[tkey] = [event]
    asset = conn.execute(f"SELECT url FROM {tables.assets} WHERE asset = ?", (key,)).fetchone()
    if asset is None:
        return None
    rows = conn.execute(
        query(TRANSFORMATIONS_OF_ASSET, tables), {"asset": key, "cutoff": cutoff}
    ).fetchall()
    if not rows:
        return None
    # Reopen each object SQLite closed, to append its events; one join copies it all once.
    parts = ["["]
    for tkey, obj in rows:
        parts += (obj[:-1], ',"events":[', ",".join(events.get(tkey, ())), "]},")
    parts[-1] = "]}]"
    return Timeline(asset[0], "".join(parts).encode())


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
    if isinstance(as_of, str) and as_of.strip().isascii() and as_of.strip().isdigit():
        return int(as_of), None
    return None, to_time(as_of)


def timeline(
    db: ProjectionDB,
    asset_url: str,
    as_of: int | str | datetime | None = None,
    *,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> dict:
    """The transformations of an asset, each with its events in (created_at, position) order.

    `position` is the log position the answer reflects. With `as_of` (a log position,
    or a created_at time), the timeline is refolded from the log's bodies of the
    asset's events up to that point, with the projection's own apply. Raises
    AssetNotFound for an asset never seen (http and https forms are one asset).
    """
    return orjson.loads(timeline_json(db, asset_url, as_of, now=now, stuck_after=stuck_after))


def timeline_json(
    db: ProjectionDB,
    asset_url: str,
    as_of: int | str | datetime | None = None,
    *,
    cache: TimelineCache | None = None,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> bytes:
    """`timeline(...)` encoded as JSON bytes, built by SQLite: what `GET /timeline` sends.

    With a `cache`, the current timeline (no `as_of`) is reused while the asset has no
    new event in the served generation and no `stuck` flag would change; `position`
    is always the current checkpoint. The whole answer is reused while nothing at all
    was committed to the read models since it was built (see `cache`).
    """
    key = asset_key(asset_url)
    until, moment = _as_of_point(as_of) if as_of is not None else (None, None)
    cutoff = stuck_cutoff(now if now is not None else moment, stuck_after)
    if as_of is None and cache is not None:
        conn = db.conn()
        with unavailable_on_error("cannot read the read models", db.path):
            kept = cache.answer(conn, key, version(conn), cutoff)
        if kept is not None:
            return kept
    with db.read() as conn:
        found = served(conn)
        if found is None:
            raise AssetNotFound(asset_url)
        tables, checkpoint = found
        if as_of is None:
            current = _current(conn, tables, key, cutoff, cache)
            if current is None:
                raise AssetNotFound(asset_url)
            url, transformations, cutoffs = current
            document = _document(url, checkpoint, transformations)
            if cache is not None:  # the version of the snapshot it was built from
                cache.keep_answer(conn, key, version(conn), cutoffs, document)
            return document
        if not has_asset(conn, tables, key):
            raise AssetNotFound(asset_url)
        if until is not None:
            checkpoint = min(checkpoint, max(until, 0))
        positions = [
            p
            for (p,) in conn.execute(
                query(POSITIONS_AS_OF, tables),
                {"asset": key, "until": checkpoint, "moment": moment},
            )
        ]
    refolded = _refold(key, db.store.get_positions(sorted(positions)), cutoff)
    url, transformations = refolded or (asset_url, b"[]")
    return _document(url, checkpoint, transformations)


def _current(
    conn: sqlite3.Connection,
    tables: Tables,
    key: str,
    cutoff: str,
    cache: TimelineCache | None,
) -> tuple[str, bytes, Cutoffs] | None:
    """read_timeline through the cache, stamped with the asset's event count (a PK lookup);
    with the range of cutoffs its stuck flags hold for."""
    if cache is None:
        found = read_timeline(conn, tables, key, cutoff)
        return None if found is None else (*found, (cutoff, cutoff))  # an empty range: unused
    row = conn.execute(
        f"SELECT events, pending FROM {tables.assets} WHERE asset = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    events, accepted = row
    hit = cache.get(tables.generation, key, events, cutoff)
    if hit is not None:
        return hit
    found = read_timeline(conn, tables, key, cutoff)
    if found is None:
        return None
    from .cache import ALWAYS

    cutoffs = ALWAYS  # no accepted transformation: no flag can change
    if accepted:
        params = {"asset": key, "cutoff": cutoff}
        cutoffs = conn.execute(query(STUCK_CUTOFFS, tables), params).fetchone()
    cache.put(tables.generation, key, events, *found, cutoffs)
    return (*found, cutoffs)


def _refold(key: str, events, cutoff: str) -> Timeline | None:
    """Fold events into throwaway in-memory tables with the projection's apply."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        tables = TIMELINE.tables(0)
        TIMELINE.setup(memory, tables)
        TIMELINE.apply(memory, tables, events)
        return read_timeline(memory, tables, key, cutoff)
    finally:
        memory.close()
