"""The overview's charts as geometry: pure functions of the dicts GET /stats and
GET /rejections answer, drawn by `templates/charts.html` as inline SVG.

Like `layout`, nothing here reads a database or a clock, so the charts are tested
without a browser (tests/unit/test_overview_charts.py). Every bar and point carries
its `title` (the numbers as text, for a tooltip and a screen reader) and each chart a
`label` that says what it shows; the pages print the same numbers in a table too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from receiver.timespec import duration

WIDTH = 720
HEIGHT = 200
LEFT = 56  # the value axis and its labels
RIGHT = 12
TOP = 12
BOTTOM = 30  # the bucket labels
ROW = 22  # one reason in a horizontal bar chart
LABEL = 220  # the reason labels of a horizontal bar chart
STACK = ("ready", "error", "stuck")
STEPS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_SLOTS = 500  # beyond this many buckets the empty ones are not drawn


def nice_max(value: float) -> int:
    """The smallest of 1, 2, 5 × 10^k at or above `value` (1 for 0): the axis's top."""
    top = 1
    while True:
        for factor in (1, 2, 5):
            if top * factor >= value:
                return top * factor
        top *= 10


def _label(start: str, bucket: str) -> str:
    """A bucket's start as its axis label: the day for 1d, else the time (and day at 00:00)."""
    day, clock = start[5:10], start[11:16]
    if bucket == "1d":
        return day
    return f"{day} {clock}" if clock == "00:00" else clock


def _floor(moment: datetime, bucket: str) -> datetime:
    if bucket == "1d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "1h":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(minute=moment.minute // 5 * 5, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slots(stats: dict) -> list[dict]:
    """`stats["buckets"]` with the empty buckets between them (and to the range's
    edges, when it has them) filled in, so time runs evenly along the axis.

    Buckets as is when the slots would be more than MAX_SLOTS.
    """
    buckets, bucket = stats["buckets"], stats["bucket"]
    if not buckets:
        return []
    step = STEPS[bucket]
    first = datetime.fromisoformat(buckets[0]["start"])
    last = datetime.fromisoformat(buckets[-1]["start"])
    if stats.get("since"):
        first = min(first, _floor(datetime.fromisoformat(stats["since"]), bucket))
    if stats.get("until"):
        end = datetime.fromisoformat(stats["until"]) - timedelta(milliseconds=1)
        last = max(last, _floor(end, bucket))
    if (last - first) / step >= MAX_SLOTS:
        return buckets
    known = {b["start"]: b for b in buckets}
    out, moment = [], first
    while moment <= last:
        start = _iso(moment)
        out.append(known.get(start) or {"start": start, "events": 0, **dict.fromkeys(STACK, 0),
                                         "p50_ms": None, "p95_ms": None})  # fmt: skip
        moment += step
    return out


def _axis(top: int, y0: float, y1: float, fmt) -> list[dict]:
    """Four value ticks from 0 to `top`, at SVG heights between y0 (0) and y1 (top)."""
    return [{"y": round(y0 - (y0 - y1) * i / 4, 1), "label": fmt(top * i / 4)} for i in range(5)]


def stacked_bars(stats: dict, *, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """Transformations per bucket, one bar each, stacked by status (ready, error, stuck).

    A segment of 0 is left out; a bucket with no transformation keeps its slot, empty.
    """
    buckets = slots(stats)
    total = max((sum(b[k] for k in STACK) for b in buckets), default=0)
    top = nice_max(total)
    x0, x1, y0, y1 = LEFT, width - RIGHT, height - BOTTOM, TOP
    slot = (x1 - x0) / max(len(buckets), 1)
    every = max(1, round(len(buckets) / 8))  # about eight labels whatever the count
    bars = []
    for i, b in enumerate(buckets):
        x = round(x0 + i * slot + slot * 0.15, 1)
        base, segments = y0, []
        for key in STACK:
            if not b[key]:
                continue
            h = (y0 - y1) * b[key] / top
            segments.append(
                {"key": key, "n": b[key], "x": x, "y": round(base - h, 1), "height": round(h, 1)}
            )
            base -= h
        label = _label(b["start"], stats["bucket"])
        counts = ", ".join(f"{b[k]} {k}" for k in STACK)
        bars.append(
            {
                "x": x,
                "width": round(max(slot * 0.7, 1.0), 1),
                "segments": segments,
                "label": label if i % every == 0 else "",
                "title": f"{b['start']}: {counts}",
            }
        )
    return {
        "width": width,
        "height": height,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "ticks": _axis(top, y0, y1, lambda v: f"{v:g}"),
        "bars": bars,
        "label": (
            f"Transformations per {stats['bucket']} by status, {len(buckets)} bucket"
            f"{'s' * (len(buckets) != 1)}: "
            + ", ".join(f"{stats['transformations'][k]} {k}" for k in STACK)
        ),
    }


def reason_bars(counts: dict[str, int], *, what: str, width: int = WIDTH) -> dict:
    """One horizontal bar per reason, most first, as long as its share of the largest."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    largest = max(counts.values(), default=0) or 1
    x0, x1 = LABEL, width - RIGHT - 50
    rows = [
        {
            "reason": reason,
            "n": n,
            "y": TOP + i * ROW,
            "mid": TOP + i * ROW + ROW / 2,
            "width": round(max((x1 - x0) * n / largest, 2.0), 1),
            "title": f"{reason}: {n} {what}",
        }
        for i, (reason, n) in enumerate(items)
    ]
    return {
        "width": width,
        "height": TOP * 2 + ROW * max(len(rows), 1),
        "x0": x0,
        "bar": ROW - 8,
        "rows": rows,
        "label": f"{what.capitalize()} by reason: "
        + (", ".join(f"{n} {reason}" for reason, n in items) or "none"),
    }


def percentile_lines(stats: dict, *, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """Accepted→ready p50 and p95 per bucket as two lines of points (buckets without a
    duration have no point and break the line)."""
    buckets = slots(stats)
    values = [b[k] for b in buckets for k in ("p50_ms", "p95_ms") if b[k] is not None]
    top = nice_max(max(values, default=0))
    x0, x1, y0, y1 = LEFT, width - RIGHT, height - BOTTOM, TOP
    slot = (x1 - x0) / max(len(buckets), 1)
    every = max(1, round(len(buckets) / 8))
    series = []
    for key, name in (("p50_ms", "p50"), ("p95_ms", "p95")):
        points, path, pen_down = [], [], False
        for i, b in enumerate(buckets):
            if b[key] is None:
                pen_down = False
                continue
            x = round(x0 + (i + 0.5) * slot, 1)
            y = round(y0 - (y0 - y1) * b[key] / top, 1)
            path.append(f"{'L' if pen_down else 'M'}{x},{y}")
            pen_down = True
            points.append({"x": x, "y": y, "title": f"{b['start']}: {name} {duration(b[key])}"})
        series.append({"name": name, "points": points, "d": " ".join(path)})
    labels = [
        {"x": round(x0 + (i + 0.5) * slot, 1), "label": _label(b["start"], stats["bucket"])}
        for i, b in enumerate(buckets)
        if i % every == 0
    ]
    overall = stats["accepted_to_ready_ms"]
    return {
        "width": width,
        "height": height,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "ticks": _axis(top, y0, y1, duration),
        "series": series,
        "labels": labels,
        "label": (
            f"Accepted to ready per {stats['bucket']}, p50 and p95; over the range "
            f"p50 {duration(overall['p50'])}, p95 {duration(overall['p95'])} "
            f"of {overall['count']} ready"
        ),
    }
