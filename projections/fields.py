"""What the read-side queries share: times, the served tables, stuck, a transformation's JSON.

Each is defined once here. `STUCK` is the one rule of stuck, a SQL predicate over a
transformations row and the bound `:cutoff` (now − stuck_after): the timeline's
`stuck` flag, the listings' `stuck` status, their filters and the assets' counts all
use it. `TRANSFORMATION` is a transformation's JSON object as every query shows it,
built by SQLite. `query(statement, tables)` fills a statement's table names and these
two fragments in one step (listings also fill their `{where}`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from store.sqlite_engine import sqlite3

from .db import read_meta
from .framework import InvalidQuery, Tables
from .video_timeline import TIMELINE

STUCK_AFTER = timedelta(minutes=15)

# Still `accepted`, and its latest event is older than the cutoff.
STUCK = "(status = 'accepted' AND last_at < :cutoff)"

# json() embeds the stored JSON columns without a parse in Python. julianday()
# differences are exact to well under a millisecond for created_at's millisecond times.
TRANSFORMATION = f"""json_object(
    'request_id', request_id, 'request_url', request_url, 'kind', kind,
    'options', json(options),
    'status', status, 'stuck', CASE WHEN {STUCK} THEN json('true') ELSE json('false') END,
    'accepted_at', accepted_at, 'ready_at', ready_at, 'error_at', error_at,
    'error_reason', error_reason, 'output_url', output_url,
    'video_metadata', json(video_metadata), 'timings', json(timings),
    'accepted_to_ready_ms',
        CAST(round((julianday(ready_at) - julianday(accepted_at)) * 86400000.0) AS INTEGER),
    'attempts', attempts,
    'first_at', first_at, 'last_at', last_at, 'event_count', events)"""


def query(statement: str, tables: Tables, **parts: str) -> str:
    """`statement` with `{events}`, `{transformations}`, `{assets}`, `{stuck}`,
    `{transformation}` filled in, and any other `{part}` from `parts`."""
    names = (tables.events, tables.transformations, tables.assets)
    return _filled(statement, names, tuple(sorted(parts.items())))


@lru_cache(maxsize=256)  # a handful of statements per generation: format each once
def _filled(statement: str, names: tuple[str, str, str], parts: tuple) -> str:
    events, transformations, assets = names
    return statement.format(
        events=events,
        transformations=transformations,
        assets=assets,
        stuck=STUCK,
        transformation=TRANSFORMATION,
        **dict(parts),
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
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the calendar's first day
        raise InvalidQuery(f"time out of range: {value.isoformat()!r}") from None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stuck_cutoff(now: datetime | str | None, stuck_after: timedelta | float) -> str:
    """The `:cutoff` of STUCK: `now` (None: the real time) minus `stuck_after` (seconds)."""
    if not isinstance(stuck_after, timedelta):
        stuck_after = timedelta(seconds=stuck_after)
    moment = datetime.now(UTC) if now is None else datetime.fromisoformat(to_time(now))
    try:
        return to_time(moment - stuck_after)
    except OverflowError:  # an as_of in the calendar's first minutes
        raise InvalidQuery(f"time out of range: {to_time(moment)!r}") from None


def is_stuck(item: dict, now: datetime | str | None, stuck_after: timedelta | float) -> bool:
    """STUCK for one transformation dict at `now`: a timeline read earlier, drawn later.

    The same rule as the SQL predicate: status `accepted` and its last event before
    the cutoff (both are `to_time` strings, so they compare as text, as SQLite does).
    """
    last = item.get("last_at") or item.get("accepted_at")
    return (
        item.get("status") == "accepted"
        and last is not None
        and to_time(last) < stuck_cutoff(now, stuck_after)
    )


def has_asset(conn: sqlite3.Connection, tables: Tables, key: str) -> bool:
    """Whether any event of the asset (by its `asset_key`) is in the served tables."""
    found = conn.execute(f"SELECT 1 FROM {tables.assets} WHERE asset = ?", (key,)).fetchone()
    return found is not None


def served(conn: sqlite3.Connection) -> tuple[Tables, int] | None:
    """The served generation's tables and its checkpoint; None before the first catch-up."""
    meta = read_meta(conn, TIMELINE.name)
    return (TIMELINE.tables(meta.generation), meta.checkpoint) if meta else None
