"""The timeline picture as geometry: a pure function of a `timeline(...)` dict.

`layout(timeline, now=...)` returns rows, bars, marks and axis ticks in SVG user
units; `templates/timeline.svg` only draws them. Nothing here reads a database or a
clock, so the picture is unit-tested without a browser (tests/unit/test_timeline_layout.py).

Reading the picture:

- one row per transformation, in the timeline's order (first event first);
- a bar from `accepted_at` to `ready_at` / `error_at`, its style named by status
  (`ready`, `error`); an `accepted` one with no terminal event is open-ended up to
  `now`: `stuck` once its last event is older than `stuck_after`, else `pending`.
  When `now` lies far beyond the events, the open bar runs to the right edge with
  `clipped` set instead of squashing every other bar;
- a mark for every event, placed at its `created_at`, shaped by its kind, with flags:
  `late` (delivered after an event that happened later: out of order), `repeat` (a
  second event of the same kind for the transformation, a second terminal event
  included) and `no_accepted` on the first event of a transformation without one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from projections.fields import is_stuck
from receiver.timespec import duration

__all__ = ["duration", "layout", "show_time", "step_text", "ticks"]

WIDTH = 1100
GUTTER = 250  # row labels: request id and status as text
RIGHT = 30
TOP = 46  # the axis and its labels
ROW = 26
BAR = 12
BOTTOM = 16
LEGEND = 36  # the key below the rows
# Open bars run to `now` when it is within this many spans of the events (or a
# minute); further away they are drawn clipped, so `now` does not squash the rest.
CLIP_BEYOND = 4
CLIP_MIN_MS = 60_000
LABEL_GAP = 28  # user units: "2nd" labels closer than this would overlap

_KINDS = {"accepted": "accepted", "ready": "ready", "error": "error"}
_STEPS_MS = [
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
    3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
    86_400_000, 172_800_000, 604_800_000, 1_209_600_000, 2_592_000_000, 7_776_000_000,
    31_536_000_000,
]  # fmt: skip
STATUS_TEXT = {
    "ready": "✓ ready",
    "error": "✗ error",
    "stuck": "⚠ stuck",
    "pending": "… running",
    "accepted": "… accepted",
}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ms(moment: datetime) -> float:
    return moment.timestamp() * 1000


def show_time(ms: float) -> str:
    """Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` UTC."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _tick_label(ms: float, step: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    if step >= 86_400_000:
        return moment.strftime("%Y-%m-%d")
    if step >= 60_000:
        return moment.strftime("%H:%M")
    if step >= 1000:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _day(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def iso(ms: float) -> str:
    """Epoch milliseconds as an ISO-8601 time (UTC, ms, Z), for links."""
    moment = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def _labelled(tick_ms: list[float], step: int, x) -> list[dict]:
    """Tick positions and labels; a tick on a new day (after the first) shows its date.

    Each tick also names the window one step either side of it (`zoom_from`, `zoom_to`):
    a click on the axis zooms there.
    """
    out, day = [], _day(tick_ms[0]) if tick_ms else None
    for t in tick_ms:
        label = _tick_label(t, step)
        if step < 86_400_000 and _day(t) != day:
            day = _day(t)
            label = f"{day[5:]} {label}"
        out.append(
            {"x": x(t), "label": label, "zoom_from": iso(t - step), "zoom_to": iso(t + step)}
        )
    return out


def ticks(start: float, end: float, *, target: int = 7) -> tuple[int, list[float]]:
    """A round step and the multiples of it within [start, end] (epoch ms), about `target`."""
    span = max(end - start, 1)
    step = next((s for s in _STEPS_MS if span / s <= target), _STEPS_MS[-1])
    first = -(-start // step) * step
    count = int((end - first) // step) + 1
    return step, [first + i * step for i in range(max(count, 0))]


def _flags(events: list[dict]) -> list[list[str]]:
    """Per event (in created_at order): late, repeat, no_accepted."""
    flags: list[list[str]] = [[] for _ in events]
    # An event is late when a later-happening event of the same transformation was
    # delivered (got a log position) before it.
    lowest_after = float("inf")
    for i in range(len(events) - 1, -1, -1):
        if events[i]["position"] > lowest_after:
            flags[i].append("late")
        lowest_after = min(lowest_after, events[i]["position"])
    seen: set[str] = set()
    for i, event in enumerate(events):
        kind = _kind(event["type"])
        terminal = "terminal" if kind in ("ready", "error") else kind
        if terminal in seen:
            flags[i].append("repeat")
        seen.add(terminal)
    if events and not any(_kind(e["type"]) == "accepted" for e in events):
        flags[0].append("no_accepted")
    return flags


def _shape(kind: str, x: float, y: float) -> str:
    """The SVG path of a mark: circle (accepted), diamond (ready), cross (error), square."""
    if kind == "accepted":
        return f"M{x - 5:.1f},{y:.1f}a5,5 0 1,0 10,0a5,5 0 1,0 -10,0z"
    if kind == "ready":
        return f"M{x:.1f},{y - 6:.1f}l6,6l-6,6l-6,-6z"
    if kind == "error":
        return f"M{x - 5:.1f},{y - 5:.1f}l10,10m0,-10l-10,10"
    return f"M{x - 4:.1f},{y - 4:.1f}h8v8h-8z"


def _kind(event_type: str) -> str:
    return _KINDS.get(event_type.rsplit(".", 1)[-1], "other")


def _status(item: dict, now: datetime, stuck_after: float) -> str:
    """The row's status at `now`; stuck is the projections' one rule (`is_stuck`)."""
    status = item["status"]
    if status != "accepted":
        return status
    return "stuck" if is_stuck(item, now, stuck_after) else "pending"


def _title(item: dict, status: str, lines: list[str]) -> str:
    head = [f"request {item['request_id']}", f"status {status}"]
    # The reason is the row's outcome only while it is in error; after a later ready,
    # it is history, told by the error's own mark.
    if item.get("error_reason") and status == "error":
        head.append(f"reason {item['error_reason']}")
    return "\n".join(head + lines)


def _moments(item: dict) -> list[float]:
    """Every time of a transformation (its fields and its events), epoch ms."""
    return [
        _ms(parse_time(t))
        for t in [item.get("accepted_at"), item.get("ready_at"), item.get("error_at")]
        + [e["created_at"] for e in item.get("events") or []]
        if t
    ]


def _in_window(item: dict, status: str, start: float, end: float, now_ms: float) -> bool:
    """Whether a transformation has anything in [start, end]: an event or its bar."""
    moments = _moments(item)
    if not moments:
        return False
    last = now_ms if status in ("stuck", "pending") else max(moments)
    return min(moments) <= end and last >= start


def step_text(ms: float) -> str:
    """A grid step as its round unit: `1 h`, `15 min`, `30 s`, `2 d` (`duration` else)."""
    for unit_ms, unit in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s")):
        if ms >= unit_ms and ms % unit_ms == 0 and (unit != "h" or ms < 172_800_000):
            return f"{int(ms // unit_ms)} {unit}"
    return duration(ms)


def _repeat_labels(marks: list[dict]) -> None:
    """Give each repeated mark's "2nd" label a place: repeats closer than LABEL_GAP to
    the one labelled before share its label, which counts them (`×2`, `×3`)."""
    groups: list[list[dict]] = []
    for mark in sorted((m for m in marks if "repeat" in m["flags"]), key=lambda m: m["x"]):
        if groups and mark["x"] - groups[-1][0]["x"] < LABEL_GAP:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    for group in groups:
        group[0]["label"] = "2nd" if len(group) == 1 else f"×{len(group)}"
        for other in group[1:]:
            other["label"] = None


def layout(
    timeline: dict,
    *,
    now: datetime | str,
    stuck_after: timedelta | float = 900,
    width: int = WIDTH,
    window: tuple[datetime | str, datetime | str] | None = None,
) -> dict:
    """Geometry of the timeline picture: axis ticks, one row per transformation, marks.

    `now` is the moment open bars run to (a datetime, or an ISO time); `stuck_after`
    (seconds) decides stuck against pending. An empty timeline gives no rows and a
    one-second axis around `now`. Coordinates are rounded to 0.1 unit.

    `window` (start, end) zooms: the axis spans exactly it, only transformations with
    an event or a bar in it get a row, marks outside it are left out and bars are cut
    at its edges (`clipped`). Raises ValueError unless start is before end.
    """
    now_ms = _ms(parse_time(now) if isinstance(now, str) else now)
    if isinstance(stuck_after, timedelta):
        stuck_after = stuck_after.total_seconds()
    items = timeline.get("transformations") or []
    total = len(items)
    moments = [m for item in items for m in _moments(item)]
    moment = parse_time(now) if isinstance(now, str) else now
    statuses = [_status(item, moment, stuck_after) for item in items]
    if window is not None:
        start, end = (_ms(parse_time(w) if isinstance(w, str) else w) for w in window)
        if not start < end:
            raise ValueError("the window's start must be before its end")
        kept = [
            (item, status)
            for item, status in zip(items, statuses, strict=True)
            if _in_window(item, status, start, end, now_ms)
        ]
        items, statuses = [i for i, _ in kept], [s for _, s in kept]
    else:
        start = min(moments, default=now_ms - 500)
        end = max(moments, default=now_ms + 500)
        open_bars = any(s in ("stuck", "pending") for s in statuses)
        if open_bars and end < now_ms <= end + max((end - start) * CLIP_BEYOND, CLIP_MIN_MS):
            end = now_ms
        pad = max(end - start, 1000) * 0.03
        start, end = start - pad, end + pad
    x0, x1 = GUTTER, width - RIGHT

    def x(ms: float) -> float:
        return round(x0 + (ms - start) / (end - start) * (x1 - x0), 1)

    step, tick_ms = ticks(start, end)
    height = TOP + ROW * len(items) + BOTTOM + LEGEND
    rows = []
    for index, (item, status) in enumerate(zip(items, statuses, strict=True)):
        y = TOP + index * ROW
        mid = y + ROW / 2
        events = list(item.get("events") or [])
        accepted = item.get("accepted_at")
        # The bar ends at the terminal event that decided the status (the later one).
        finished = item.get("error_at") if status == "error" else item.get("ready_at")
        bar = None
        if accepted:
            a_ms = _ms(parse_time(accepted))
            clipped = False
            if status in ("stuck", "pending"):
                f_ms = now_ms
                lines = [f"accepted {show_time(a_ms)}", f"open for {duration(now_ms - a_ms)}"]
            else:
                f_ms = _ms(parse_time(finished)) if finished else a_ms
                lines = [
                    f"accepted {show_time(a_ms)}",
                    f"{status} {show_time(f_ms)}",
                    f"took {duration(f_ms - a_ms)}",
                ]
            if f_ms > end:
                f_ms, clipped = end, True
            if window is not None and a_ms < start:
                a_ms, clipped = start, True
            bx = x(a_ms)
            bar = {
                "x": bx,
                "y": round(mid - BAR / 2, 1),
                "width": max(round(x(f_ms) - bx, 1), 2.0),
                "height": BAR,
                "status": status,
                "clipped": clipped,
                "title": _title(item, status, lines),
            }
        marks = []
        for event, flags in zip(events, _flags(events), strict=True):
            if not start <= _ms(parse_time(event["created_at"])) <= end:
                continue  # outside the zoom window
            kind = _kind(event["type"])
            notes = {
                "late": "delivered out of order (after a later event)",
                "repeat": "another event of this kind came before",
                "no_accepted": "no accepted event for this transformation",
            }
            lines = [
                f"{event['type']} {event['id']}",
                f"created {event['created_at']}, log position {event['position']}",
                *(notes[f] for f in flags),
            ]
            if kind == "error" and item.get("error_reason") and status != "error":
                lines.append(f"reason {item['error_reason']} (a later event decided the status)")
            mx = x(_ms(parse_time(event["created_at"])))
            marks.append(
                {
                    "x": mx,
                    "y": mid,
                    "d": _shape(kind, mx, mid),
                    "kind": kind,
                    "flags": flags,
                    "classes": " ".join([f"mark mark-{kind}", *(f"flag-{flag}" for flag in flags)]),
                    "event_id": event["id"],
                    "quoted_id": quote(event["id"], safe=""),
                    "position": event["position"],
                    "title": _title(item, status, lines),
                    "label": None,
                }
            )
        _repeat_labels(marks)
        rows.append(
            {
                "y": y,
                "mid": mid,
                "height": ROW,
                "request_id": item["request_id"],
                "status": status,
                "status_text": STATUS_TEXT.get(status, status),
                "reason": item.get("error_reason") if status == "error" else None,
                "attempts": item.get("attempts"),
                "bar": bar,
                "marks": marks,
                "stripe": index % 2 == 1,
            }
        )
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    asset = timeline.get("asset", "")
    return {
        "width": width,
        "height": height,
        "x0": x0,
        "x1": x1,
        "top": TOP,
        "bottom": height - BOTTOM - LEGEND,
        "legend_y": height - LEGEND / 2,
        "start": show_time(start),
        "end": show_time(end),
        "ticks": _labelled(tick_ms, step, x),
        "tick_date": _day(tick_ms[0] if tick_ms else start),
        "step": step_text(step),
        "rows": rows,
        "window": None if window is None else (iso(start), iso(end)),
        "label": (
            f"Timeline of {asset}: {len(items)} transformation{'s' * (len(items) != 1)}"
            + (f" of {total} in the window" if window is not None else "")
            + (f" ({summary})" if summary else "")
            + f", from {show_time(start)} to {show_time(end)} UTC"
        ),
    }
