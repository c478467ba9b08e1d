"""`stats(db, since, until, bucket)`: the overview's numbers, from the read models only.

Events come from the event-types projection, transformations and durations from the
timeline's aggregates (`timeline_stats_sql`); both are kept per 5-minute bucket of
the events' own `created_at`, and per hour and per day, so a range is whole 5-minute
buckets: `since` is floored and `until` raised to a bucket boundary, and the answer
echoes those. A range is read from the coarsest rows that tile it (`tile`): whole days
from the day rows, whole hours at its edges from the hour rows, the rest from the
5-minute rows, never coarser than `bucket` (each row then falls in one bucket), so an
all-time answer by day reads a few rows per day.

A transformation counts in the bucket of its latest event. `stuck` is `fields.STUCK`
at `now`: an accepted transformation whose latest event is older than now − stuck_after;
`running` the other accepted ones. The aggregates hold accepted ones per bucket; the
range is tiled on each side of the 5-minute bucket holding the cutoff, and only that
bucket is split by reading its accepted transformations.

Durations are a histogram (`timeline_stats_sql`: exact under 1 s, then log-spaced bins
1.8 % wide). Percentiles are by the nearest rank over it: the bin holding rank
ceil(p/100 · count) in ascending order, reported as that bin's `bin_value`, which is
within 1 % of every duration in the bin, so within 1 % of the exact nearest-rank
percentile (exact under 1 s).

Each reader thread keeps its latest answers (`_KEPT`) while its connection sees the
file unchanged and the cut-off stays in its 5-minute bucket (unless that bucket was
split): a catch-up or a rebuild's swap changes the file, so nothing stale is served.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

import orjson

from .cache import ALWAYS, KeptAnswers
from .db import ProjectionDB, read_meta, version
from .event_types import EVENT_TYPES
from .fields import STUCK_AFTER, served, stuck_cutoff, to_time
from .framework import InvalidQuery
from .timeline_stats_sql import EXACT_BELOW, RATIO

BUCKETS = {"5m": 5, "1h": 60, "1d": 1440}
PERCENTILES = (50, 95, 99)
STATUSES = ("ready", "error", "stuck", "running")
_STEP = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
_FINER = {"1d": "1h", "1h": "5m"}
OPEN_START, OPEN_END = "", "~"  # below and above every bucket text

_RANGE = " WHERE grain = ? AND bucket >= ? AND bucket < ?"
# The first and the last 5-minute bucket a counts table holds (its primary key's ends).
EXTENT = (
    "SELECT (SELECT min(bucket) FROM {counts} WHERE grain = '5m'),"
    " (SELECT max(bucket) FROM {counts} WHERE grain = '5m')"
)
# Each statement reads the rows of one tile (grain, from, to), summed by what it answers.
EVENTS_BY_TYPE = "SELECT type, sum(n) FROM {counts}" + _RANGE + " GROUP BY type"
EVENTS_BY_BUCKET = "SELECT bucket, sum(n) FROM {counts}" + _RANGE + " GROUP BY bucket"
COUNTS = (
    "SELECT status, kind, format, reason, sum(n) FROM {counts}"
    + _RANGE
    + " GROUP BY status, kind, format, reason"
)
COUNTS_BY_BUCKET = (
    "SELECT bucket, status, sum(n) FROM {counts}" + _RANGE + " GROUP BY bucket, status"
)
# Per kind its bins ascending and their counts in the same order, as text.
DURATIONS_BY_KIND = (
    "SELECT kind, group_concat(bin, ',' ORDER BY bin), group_concat(c, ',' ORDER BY bin)"
    " FROM (SELECT kind, bin, sum(n) AS c FROM {durations}"
    + _RANGE
    + " GROUP BY kind, bin) GROUP BY kind"
)
# Per bucket its bins ascending, and their counts in the same order, as text: a bin
# appears once per kind (equal neighbours), which the nearest rank takes as they are.
DURATIONS_BY_BUCKET = (
    "SELECT bucket, group_concat(bin, ',' ORDER BY bin), group_concat(n, ',' ORDER BY bin)"
    " FROM {durations}" + _RANGE + " GROUP BY bucket"
)
# The accepted transformations of the cutoff's bucket that are stuck (fields.STUCK).
SPLIT = """
SELECT coalesce(CAST(kind AS TEXT), '') AS kind,
    coalesce(CAST(options ->> '$.format' AS TEXT), '') AS format, count(*)
FROM {transformations}
WHERE status = 'accepted' AND last_at >= :cb AND last_at < :cutoff
GROUP BY kind, format
"""


def bucket_start(moment: str) -> str:
    """The start of the 5-minute bucket of a `to_time` text (as `timeline_stats_sql.BUCKET`)."""
    return f"{moment[:14]}{int(moment[14:16]) // 5 * 5:02d}:00.000Z"


def bin_value(b: int) -> int:
    """The duration (ms) a histogram bin stands for: within 1 % of every duration in it.

    A bin under EXACT_BELOW is one duration. Bin EXACT_BELOW + j holds
    [E·R^j, E·R^(j+1)) (E = EXACT_BELOW, R = RATIO); its value E·R^(j+½), rounded to the
    ms, is within √R − 1 (0.9 %) plus 0.5 ms / E (0.05 %) of each of them.
    """
    if b < EXACT_BELOW:
        return b
    return round(EXACT_BELOW * RATIO ** (b - EXACT_BELOW + 0.5))


def _floor(moment: str, grain: str) -> str:
    """A 5-minute boundary (or OPEN_START/OPEN_END) floored to `grain`'s boundaries."""
    if moment in (OPEN_START, OPEN_END) or grain == "5m":
        return moment
    return moment[:10] + "T00:00:00.000Z" if grain == "1d" else moment[:13] + ":00:00.000Z"


def _later(moment: str, grain: str) -> str:
    """`moment` plus one `grain` (OPEN_END past the calendar's end)."""
    try:
        return to_time(datetime.fromisoformat(moment) + _STEP[grain])
    except OverflowError:
        return OPEN_END


def _ceil(moment: str, grain: str) -> str:
    floor = _floor(moment, grain)
    return moment if floor == moment else _later(floor, grain)


def tile(start: str, end: str, coarsest: str) -> list[tuple[str, str, str]]:
    """(grain, from, to) ranges whose rows of that grain tile [start, end) exactly.

    `start` and `end` are 5-minute boundaries or OPEN_START/OPEN_END; no grain is
    coarser than `coarsest`. The coarsest whole buckets first, then each edge the same
    way one grain finer: at most one range of days, two of hours, two of 5 minutes.
    """
    if start >= end:
        return []
    if coarsest == "5m":
        return [("5m", start, end)]
    finer = _FINER[coarsest]
    first, last = _ceil(start, coarsest), _floor(end, coarsest)
    if first >= last:
        return tile(start, end, finer)
    return [(coarsest, first, last), *tile(start, first, finer), *tile(last, end, finer)]


def _range(since, until) -> tuple[str | None, str | None]:
    start = None if since is None else bucket_start(to_time(since))
    end = None
    if until is not None:
        end = to_time(until)
        floor = bucket_start(end)
        if floor != end:  # raised to the next boundary
            floor = _later(floor, "5m")
        end = floor
    if start is not None and end is not None and start >= end:
        raise InvalidQuery("since must be before until")
    return start, end


def _parts(start: str, end: str, cutoff: str, bucket: str) -> list[tuple[str, list]]:
    """The range's tiles before the cutoff's 5-minute bucket, in it, and after it.

    Accepted transformations counted before it are stuck, after it running; in it, they
    are split by reading them. Each part is tiled no coarser than `bucket`.
    """
    cb = bucket_start(cutoff)
    after = _later(cb, "5m")
    return [
        ("stuck", tile(start, min(end, cb), bucket)),
        ("split", tile(max(start, cb), min(end, after), bucket)),
        ("running", tile(max(start, after), end, bucket)),
    ]


def _extent(conn, tables: list[str]) -> tuple[str, str]:
    """The start of the first day and the end of the last day that `tables` count in."""
    first, last = OPEN_END, OPEN_START
    for table in tables:
        lo, hi = conn.execute(EXTENT.format(counts=table)).fetchone()
        if lo is not None:
            first = min(first, _floor(lo, "1d"))
            last = max(last, _later(_floor(hi, "1d"), "1d"))
    return first, last


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
    `p50_ms` and `p95_ms` (None without a duration). Missing kinds, formats and reasons
    are named "unknown"; `buckets` lists only buckets with something in them, oldest
    first; a percentile is None when there is no duration, else within 1 % of the
    exact nearest-rank value (exact under 1 s). Raises InvalidQuery for an unknown
    bucket or time. Before the first catch-up every count is zero.
    """
    if bucket not in BUCKETS:
        raise InvalidQuery(f"unknown bucket {bucket!r}; use one of {', '.join(BUCKETS)}")
    start, end = _range(since, until)
    cutoff = stuck_cutoff(now, stuck_after)
    answer: dict[str, Any] = {
        "since": start,
        "until": end,
        "bucket": bucket,
        "events_by_type": {},
        "transformations": _zero(),
        "errors_by_reason": {},
        "accepted_to_ready_ms": _percentiles({}),
        "buckets": [],
        "transformations_by_kind": {},
        "transformations_by_format": {},
        "accepted_to_ready_ms_by_kind": {},
    }
    groups: dict[str, dict] = {}
    with db.read() as conn:
        key = (start, end, bucket, bucket_start(cutoff))
        built_at = version(conn)
        kept = _KEPT.get(conn, key, built_at, cutoff)
        if kept is not None:
            return orjson.loads(kept)  # a copy: the caller may change it
        meta = read_meta(conn, EVENT_TYPES.name)
        found = served(conn)
        counted = [EVENT_TYPES.tables(meta.generation).counts] if meta is not None else []
        counted += [found[0].counts] if found is not None else []
        first, last = _extent(conn, counted)
        # Tiles past the data would read nothing: the range is cut to the days holding it.
        parts = _parts(max(start or OPEN_START, first), min(end or OPEN_END, last), cutoff, bucket)
        if meta is not None:
            counts = EVENT_TYPES.tables(meta.generation).counts
            by_type: dict[str, int] = {}
            for _part, tiles in parts:
                for piece in tiles:
                    for kind, n in conn.execute(EVENTS_BY_TYPE.format(counts=counts), piece):
                        by_type[kind] = by_type.get(kind, 0) + n
                    for b, n in conn.execute(EVENTS_BY_BUCKET.format(counts=counts), piece):
                        g = _floor(b, bucket)
                        groups.setdefault(g, _bucket(g))["events"] += n
            answer["events_by_type"] = dict(sorted(by_type.items()))
        split = False
        if found is not None:
            split = _transformations(conn, found[0], bucket, parts, cutoff, answer, groups)
            _durations(conn, found[0], bucket, parts, answer, groups)
        answer["buckets"] = [groups[g] for g in sorted(groups)]
        if not split:  # else it depends on the cut-off itself, not only on its bucket
            _KEPT.keep(conn, key, built_at, ALWAYS, orjson.dumps(answer))
    return answer


# Each reader thread keeps its latest answers, as GET /timeline's (`cache.KeptAnswers`):
# valid while its connection sees the file unchanged and the stuck cut-off stays in the
# same 5-minute bucket (part of the key), unless that bucket held accepted
# transformations (then the split depends on the cut-off itself: not kept).
_KEPT = KeptAnswers(max_bytes=4 * 1024 * 1024)


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


def _transformations(conn, tables, bucket, parts, cutoff, answer, groups) -> bool:
    """Counts by status, kind, format and reason, and per bucket; True when the cut-off's
    bucket held accepted transformations (split by reading them)."""
    total = answer["transformations"]
    reasons: dict[str, int] = {}
    by_kind: dict[str, dict] = {}
    by_format: dict[str, dict] = {}
    split: dict[tuple[str, str], int] = {}  # the cutoff bucket's accepted, by kind, format
    totals = COUNTS.format(counts=tables.counts)
    per_bucket = COUNTS_BY_BUCKET.format(counts=tables.counts)
    for part, tiles in parts:
        for piece in tiles:
            for status, kind, fmt, reason, n in conn.execute(totals, piece):
                s = status if status != "accepted" else part
                if s == "split":
                    split[kind, fmt] = split.get((kind, fmt), 0) + n
                    continue
                total[s] += n
                _add(by_kind, kind, s, n)
                _add(by_format, fmt, s, n)
                if s == "error":
                    reasons[reason or "unknown"] = reasons.get(reason or "unknown", 0) + n
            for b, status, n in conn.execute(per_bucket, piece):
                g = _floor(b, bucket)
                row = groups.setdefault(g, _bucket(g))
                s = status if status != "accepted" else part
                if s in ("ready", "error", "stuck"):
                    row[s] += n
    if split:  # the cutoff's bucket is in range: split its accepted ones
        params = {"cb": bucket_start(cutoff), "cutoff": cutoff}
        statement = SPLIT.format(transformations=tables.transformations)
        stuck = {(kind, fmt): n for kind, fmt, n in conn.execute(statement, params)}
        for (kind, fmt), n in split.items():
            for s, m in (
                ("stuck", stuck.get((kind, fmt), 0)),
                ("running", n - stuck.get((kind, fmt), 0)),
            ):
                total[s] += m
                _add(by_kind, kind, s, m)
                _add(by_format, fmt, s, m)
        groups[_floor(bucket_start(cutoff), bucket)]["stuck"] += sum(stuck.values())
    answer["errors_by_reason"] = dict(sorted(reasons.items()))
    answer["transformations_by_kind"] = dict(sorted(by_kind.items()))
    answer["transformations_by_format"] = dict(sorted(by_format.items()))
    return bool(split)


def _durations(conn, tables, bucket, parts, answer, groups) -> None:
    """The histograms of the range, overall, per kind and per bucket, and their percentiles.

    SQLite lists the bins per kind, and each bucket's bins in order: for the tiles
    at the bucket's own grain (the common case) that list is the bucket's histogram;
    only the finer tiles at a range's edges are merged here.
    """
    by_kind: dict[str, dict[int, int]] = {}
    edges: dict[str, dict[int, int]] = {}  # buckets made of finer tiles
    per_kind = DURATIONS_BY_KIND.format(durations=tables.durations)
    per_bucket = DURATIONS_BY_BUCKET.format(durations=tables.durations)
    for _part, tiles in parts:
        for piece in tiles:
            for kind, bins, counts in conn.execute(per_kind, piece):
                found = zip(map(int, bins.split(",")), map(int, counts.split(",")), strict=True)
                if kind not in by_kind:
                    by_kind[kind] = dict(found)
                    continue
                histogram = by_kind[kind]
                for bin_, n in found:
                    histogram[bin_] = histogram.get(bin_, 0) + n
            for b, bins, counts in conn.execute(per_bucket, piece):
                bins, counts = bins.split(","), list(map(int, counts.split(",")))
                if piece[0] == bucket:
                    _bucket_percentiles(groups, b, bins, counts)
                    continue
                histogram = edges.setdefault(_floor(b, bucket), {})
                for bin_, n in zip(map(int, bins), counts, strict=True):
                    histogram[bin_] = histogram.get(bin_, 0) + n
    for g, histogram in edges.items():
        bins = sorted(histogram)
        _bucket_percentiles(groups, g, bins, [histogram[b] for b in bins])
    overall: dict[int, int] = {}
    for histogram in by_kind.values():
        for bin_, n in histogram.items():
            overall[bin_] = overall.get(bin_, 0) + n
    answer["accepted_to_ready_ms"] = _percentiles(overall)
    answer["accepted_to_ready_ms_by_kind"] = {
        kind or "unknown": _percentiles(histogram) for kind, histogram in sorted(by_kind.items())
    }


def _bucket_percentiles(groups: dict, g: str, bins, counts) -> None:
    found = _nearest_ranks(bins, counts, (50, 95))
    groups.setdefault(g, _bucket(g)).update(p50_ms=found["p50"], p95_ms=found["p95"])


def _nearest_ranks(bins, counts, percentiles=PERCENTILES) -> dict:
    """p-th percentiles by nearest rank over ascending `bins` holding `counts`."""
    cumulative = list(accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    answer: dict[str, int | None] = {}
    for p in percentiles:
        rank = max(1, -(-p * total // 100))  # ceil, exactly
        answer[f"p{p}"] = bin_value(int(bins[bisect_left(cumulative, rank)])) if total else None
    return answer


def _percentiles(histogram: dict[int, int]) -> dict:
    """count and p50/p95/p99 by nearest rank over a histogram {bin: n}; None when empty."""
    bins = sorted(histogram)
    counts = [histogram[b] for b in bins]
    return {"count": sum(counts), **_nearest_ranks(bins, counts)}


__all__ = ["BUCKETS", "bin_value", "bucket_start", "stats", "tile"]
