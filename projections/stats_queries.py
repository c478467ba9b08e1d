"""`stats(db, since, until, bucket)`: the overview's numbers, from the read models only.

Events come from the event-types projection, transformations and durations from the
timeline's aggregates (`timeline_stats_sql`); both are kept per 5-minute bucket of
the events' own `created_at`, so a range is whole 5-minute buckets: `since` is
floored and `until` raised to a bucket boundary, and the answer echoes those.

A transformation counts in the bucket of its latest event. `stuck` is `fields.STUCK`
at `now`: an accepted transformation whose latest event is older than now − stuck_after;
`running` the other accepted ones. The aggregates hold accepted ones per bucket; only
the bucket holding the cutoff is split by reading its accepted transformations.

Percentiles are by the nearest rank over every duration kept (exact, to the ms): the
value at rank ceil(p/100 · count) in ascending order. A query costs the aggregate rows
of its range (a few per bucket and per distinct duration), never the log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .db import ProjectionDB, read_meta
from .event_types import EVENT_TYPES
from .fields import STUCK_AFTER, served, stuck_cutoff, to_time
from .framework import InvalidQuery

BUCKETS = {"5m": 5, "1h": 60, "1d": 1440}
PERCENTILES = (50, 95, 99)
STATUSES = ("ready", "error", "stuck", "running")

# A 5-minute bucket's start as the group of the chosen size.
_GROUP = {
    "5m": "bucket",
    "1h": "substr(bucket, 1, 13) || ':00:00.000Z'",
    "1d": "substr(bucket, 1, 10) || 'T00:00:00.000Z'",
}
_RANGE = "bucket >= :since AND bucket < :until"
# The status a counts row stands for at the cutoff's bucket :cb ('split': that bucket).
_STATUS = """CASE WHEN status <> 'accepted' THEN status WHEN bucket < :cb THEN 'stuck'
    WHEN bucket > :cb THEN 'running' ELSE 'split' END"""

EVENTS_BY_TYPE = "SELECT type, sum(n) FROM {counts} WHERE " + _RANGE + " GROUP BY type"
EVENTS_BY_GROUP = "SELECT {group}, sum(n) FROM {counts} WHERE " + _RANGE + " GROUP BY 1"
TOTALS = (
    "SELECT "
    + _STATUS
    + " AS s, kind, format, reason, sum(n) FROM {counts} WHERE "
    + _RANGE
    + " GROUP BY s, kind, format, reason"
)
BY_GROUP = (
    "SELECT {group} AS g, "
    + _STATUS
    + " AS s, sum(n) FROM {counts} WHERE "
    + _RANGE
    + " GROUP BY g, s"
)
# The accepted transformations of the cutoff's bucket that are stuck (fields.STUCK).
SPLIT = """
SELECT coalesce(CAST(kind AS TEXT), '') AS kind,
    coalesce(CAST(options ->> '$.format' AS TEXT), '') AS format, count(*)
FROM {transformations}
WHERE status = 'accepted' AND last_at >= :cb AND last_at < :cutoff
GROUP BY kind, format
"""
DURATION_COUNT = "SELECT kind, sum(n) FROM {durations} WHERE " + _RANGE + " GROUP BY kind"
# The smallest duration whose cumulative count reaches each rank (nearest-rank method).
PERCENTILE = """
SELECT min(ms) FILTER (WHERE cum >= :r50), min(ms) FILTER (WHERE cum >= :r95),
    min(ms) FILTER (WHERE cum >= :r99)
FROM (SELECT ms, sum(sum(n)) OVER (ORDER BY ms) AS cum FROM {durations}
      WHERE {where} GROUP BY ms)
"""
# p50 and p95 per group, nearest rank: ranks ceil(p/100 · total) in integer arithmetic.
PERCENTILES_BY_GROUP = (
    """
SELECT g, min(ms) FILTER (WHERE 100 * cum >= 50 * total),
    min(ms) FILTER (WHERE 100 * cum >= 95 * total)
FROM (SELECT g, ms, sum(c) OVER (PARTITION BY g ORDER BY ms) AS cum,
        sum(c) OVER (PARTITION BY g) AS total
      FROM (SELECT {group} AS g, ms, sum(n) AS c FROM {durations}
            WHERE """
    + _RANGE
    + """ GROUP BY g, ms))
GROUP BY g
"""
)


def bucket_start(moment: str) -> str:
    """The start of the 5-minute bucket of a `to_time` text (as `timeline_stats_sql.BUCKET`)."""
    return f"{moment[:14]}{int(moment[14:16]) // 5 * 5:02d}:00.000Z"


def _range(since, until) -> tuple[str | None, str | None]:
    start = None if since is None else bucket_start(to_time(since))
    end = None
    if until is not None:
        end = to_time(until)
        floor = bucket_start(end)
        if floor != end:  # raised to the next boundary
            later = datetime.fromisoformat(floor) + timedelta(minutes=5)
            floor = to_time(later)
        end = floor
    if start is not None and end is not None and start >= end:
        raise InvalidQuery("since must be before until")
    return start, end


def _zero() -> dict:
    return dict.fromkeys(STATUSES, 0)


def stats(
    db: ProjectionDB,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    bucket: str = "1h",
    *,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = STUCK_AFTER,
) -> dict:
    """Counts, durations and buckets of [since, until) (None: all time), by `bucket`.

    Returns the dict of issue 21 (`since`, `until`, `bucket`, `events_by_type`,
    `transformations`, `errors_by_reason`, `accepted_to_ready_ms`, `buckets`), plus
    `transformations_by_kind`, `transformations_by_format` and
    `accepted_to_ready_ms_by_kind`; each bucket also holds its own accepted→ready
    `p50_ms` and `p95_ms` (None without a duration). Missing kinds, formats and reasons are named
    "unknown"; `buckets` lists only buckets with something in them, oldest first; a
    percentile is None when there is no duration. Raises InvalidQuery for an unknown
    bucket or time. Before the first catch-up every count is zero.
    """
    if bucket not in BUCKETS:
        raise InvalidQuery(f"unknown bucket {bucket!r}; use one of {', '.join(BUCKETS)}")
    start, end = _range(since, until)
    cutoff = stuck_cutoff(now, stuck_after)
    params = {
        "since": start or "",
        "until": end or "~",
        "cutoff": cutoff,
        "cb": bucket_start(cutoff),
    }
    answer: dict[str, Any] = {
        "since": start,
        "until": end,
        "bucket": bucket,
        "events_by_type": {},
        "transformations": _zero(),
        "errors_by_reason": {},
        "accepted_to_ready_ms": _percentiles(0, None),
        "buckets": [],
        "transformations_by_kind": {},
        "transformations_by_format": {},
        "accepted_to_ready_ms_by_kind": {},
    }
    groups: dict[str, dict] = {}
    with db.read() as conn:
        meta = read_meta(conn, EVENT_TYPES.name)
        if meta is not None:
            counts = EVENT_TYPES.tables(meta.generation).counts
            rows = conn.execute(EVENTS_BY_TYPE.format(counts=counts), params)
            answer["events_by_type"] = dict(sorted(rows))
            statement = EVENTS_BY_GROUP.format(counts=counts, group=_GROUP[bucket])
            for g, n in conn.execute(statement, params):
                groups.setdefault(g, _bucket(g))["events"] = n
        found = served(conn)
        if found is not None:
            _transformations(conn, found[0], bucket, params, answer, groups)
    answer["buckets"] = [groups[g] for g in sorted(groups)]
    return answer


def _bucket(start: str) -> dict:
    return {
        "start": start,
        "events": 0,
        "ready": 0,
        "error": 0,
        "stuck": 0,
        "p50_ms": None,
        "p95_ms": None,
    }


def _add(table: dict, key: str, status: str, n: int) -> None:
    table.setdefault(key or "unknown", _zero())[status] += n


def _transformations(conn, tables, bucket, params, answer, groups) -> None:
    names = {"counts": tables.counts, "durations": tables.durations}
    total = answer["transformations"]
    by_kind: dict[str, dict] = {}
    by_format: dict[str, dict] = {}
    split_rows = []
    for s, kind, fmt, reason, n in conn.execute(TOTALS.format(**names), params):
        if s == "split":
            split_rows.append((kind, fmt, n))
            continue
        total[s] += n
        _add(by_kind, kind, s, n)
        _add(by_format, fmt, s, n)
        if s == "error":
            reasons = answer["errors_by_reason"]
            reasons[reason or "unknown"] = reasons.get(reason or "unknown", 0) + n
    stuck_split = 0
    if split_rows:  # the cutoff's bucket is in range: split its accepted ones
        stuck = {
            (kind, fmt): n
            for kind, fmt, n in conn.execute(
                SPLIT.format(transformations=tables.transformations), params
            )
        }
        for kind, fmt, n in split_rows:
            for s, m in (
                ("stuck", stuck.get((kind, fmt), 0)),
                ("running", n - stuck.get((kind, fmt), 0)),
            ):
                total[s] += m
                _add(by_kind, kind, s, m)
                _add(by_format, fmt, s, m)
        stuck_split = sum(stuck.values())
    statement = BY_GROUP.format(**names, group=_GROUP[bucket])
    split_group = None
    for g, s, n in conn.execute(statement, params):
        row = groups.setdefault(g, _bucket(g))
        if s in ("ready", "error", "stuck"):
            row[s] += n
        elif s == "split":
            split_group = g
    if split_group is not None:
        groups[split_group]["stuck"] += stuck_split
    answer["errors_by_reason"] = dict(sorted(answer["errors_by_reason"].items()))
    answer["transformations_by_kind"] = dict(sorted(by_kind.items()))
    answer["transformations_by_format"] = dict(sorted(by_format.items()))
    _durations(conn, names, params, answer)
    statement = PERCENTILES_BY_GROUP.format(durations=tables.durations, group=_GROUP[bucket])
    for g, p50, p95 in conn.execute(statement, params):
        groups.setdefault(g, _bucket(g)).update(p50_ms=p50, p95_ms=p95)


def _durations(conn, names, params, answer) -> None:
    per_kind = dict(conn.execute(DURATION_COUNT.format(**names), params).fetchall())
    count = sum(per_kind.values())
    answer["accepted_to_ready_ms"] = _percentile(conn, names, params, count, None)
    answer["accepted_to_ready_ms_by_kind"] = {
        kind or "unknown": _percentile(conn, names, params, n, kind)
        for kind, n in sorted(per_kind.items())
    }


def _percentile(conn, names, params, count: int, kind: str | None) -> dict:
    if count == 0:
        return _percentiles(0, None)
    where = _RANGE + ("" if kind is None else " AND kind = :kind")
    ranks = {f"r{p}": max(1, -(-p * count // 100)) for p in PERCENTILES}  # ceil, exactly
    statement = PERCENTILE.format(durations=names["durations"], where=where)
    values = conn.execute(statement, {**params, **ranks, "kind": kind}).fetchone()
    return _percentiles(count, values)


def _percentiles(count: int, values) -> dict:
    values = values or (None,) * len(PERCENTILES)
    return {"count": count, **{f"p{p}": v for p, v in zip(PERCENTILES, values, strict=True)}}


__all__ = ["BUCKETS", "bucket_start", "stats"]
