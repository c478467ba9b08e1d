"""Plain-text rendering of query results for the terminal.

Tables fit `width` columns (the terminal's, kept within 80..120): a long column (a
transformation's reason or output, an asset, a request id when needed) leaves the row
for a line of its own below it. `wide=True` shows every column on one line. Durations
read as on the pages (`receiver.timespec.duration`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime

from receiver.timespec import duration

MIN_WIDTH, MAX_WIDTH = 80, 120
GAP = "  "


def terminal_width() -> int:
    """The terminal's width within MIN_WIDTH..MAX_WIDTH (MAX_WIDTH when not a terminal)."""
    columns = shutil.get_terminal_size((MAX_WIDTH, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, columns))


def seconds(ms: float | None) -> str:
    """Milliseconds in the pages' human form ("13.2 s", "24 min 51 s"); "-" when unknown."""
    return duration(ms)


def clock(timestamp: str | None) -> str:
    """An ISO time as "YYYY-MM-DD HH:MM:SS.mmm"; "-" when absent."""
    return "-" if not timestamp else timestamp.replace("T", " ").removesuffix("Z")


def short_clock(timestamp: str | None) -> str:
    """An ISO time to the second, "YYYY-MM-DD HH:MM:SS"; "-" when absent."""
    return "-" if not timestamp else clock(timestamp)[:19]


def shorten(text: str, width: int) -> str:
    """`text` cut in the middle with "…" to at most `width` characters (URLs keep both
    their host and their query)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    keep = width - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    width: int | None = None,
    spill: Sequence[tuple[int, str]] = (),
    always: int = 0,
) -> str:
    """Left-aligned columns, two spaces apart, sized to their widest cell.

    With a `width`, the `spill` columns (index, prefix), in order, leave the table
    until it fits: each row's value of a spilled column goes on a line of its own
    below it, indented (at most past a STATUS column), after its prefix, shortened in the
    middle to the width; the first `always` of them spill whatever the width. Empty
    and "-" values spill nothing.
    """
    rows = [list(map(str, row)) for row in rows]
    keep = list(range(len(headers)))
    spilled: list[tuple[int, str]] = []

    def widths() -> list[int]:
        return [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in keep]

    for number, (index, prefix) in enumerate(spill):
        fits = width is None or sum(widths()) + len(GAP) * (len(keep) - 1) <= width
        if fits and number >= always:
            break
        keep.remove(index)
        spilled.append((index, prefix))
    sizes = widths()
    indent = " " * (min(sizes[0], len("STATUS")) + len(GAP))

    def line(cells: Sequence[str]) -> str:
        return GAP.join(cells[i].ljust(w) for i, w in zip(keep, sizes, strict=True)).rstrip()

    out = [line(headers)]
    for row in rows:
        out.append(line(row))
        for index, prefix in spilled:
            if row[index] not in ("", "-"):
                room = (width or MAX_WIDTH) - len(indent) - len(prefix)
                out.append(indent + prefix + shorten(row[index], max(room, 12)))
    return "\n".join(out)


def _took(item: dict) -> str:
    """accepted→ready for a ready row, accepted→error for an error row."""
    if item["status"] == "ready":
        return duration(item.get("accepted_to_ready_ms"))
    if item["status"] == "error" and item.get("accepted_at") and item.get("error_at"):
        span = datetime.fromisoformat(item["error_at"]) - datetime.fromisoformat(
            item["accepted_at"]
        )
        return duration(span.total_seconds() * 1000)
    return "-"


def _status(item: dict) -> str:
    return "stuck" if item.get("stuck") else item["status"]


def _outcome(item: dict) -> str | None:
    """What the row came to: the output of a ready one, the reason of an error; none
    for one still accepted (stuck or not): its request URL is not an outcome."""
    if item["status"] == "ready":
        return item.get("output_url")
    if item["status"] == "error":
        return item.get("error_reason")
    return None


def timeline(result: dict, *, width: int | None = None, wide: bool = False) -> str:
    """One row per transformation: status (`stuck` for a stuck accepted one), when it
    was accepted, how long it took, its timings and attempts, its request; its reason
    or output on the line below (and its request too, when the line would not fit).
    `wide`: every column on one line, nothing moved or shortened."""
    count = len(result["transformations"])
    title = f"{result['asset']}: {count} transformation{'s' * (count != 1)} (log position {result['position']})"
    if wide:
        return title + "\n" + _wide_timeline(result)
    headers = ["STATUS", "ACCEPTED", "TOOK", "DOWNLOAD", "ENCODING", "ATTEMPTS", "REQUEST", "→"]
    rows = []
    for item in result["transformations"]:
        timings = item.get("timings") or {}
        rows.append(
            [
                _status(item),
                short_clock(item.get("accepted_at")),
                _took(item),
                seconds(timings.get("download_duration")),
                seconds(timings.get("encoding_duration")),
                str(item.get("attempts", 0)),
                item["request_id"] or "-",
                _outcome(item) or "-",
            ]
        )
    width = terminal_width() if width is None else width
    # The outcome always has a line of its own (a URL rarely fits beside the rest); the
    # request joins it when the row would not fit.
    return (
        title
        + "\n"
        + table(headers, rows, width=width, spill=[(7, "→ "), (6, "request ")], always=1)
    )


def _wide_timeline(result: dict) -> str:
    rows = []
    for item in result["transformations"]:
        timings = item.get("timings") or {}
        failed = item["status"] == "error"
        finished = item.get("error_at") if failed else item.get("ready_at")
        rows.append(
            [
                _status(item),
                item.get("kind") or "-",
                clock(item.get("accepted_at")),
                clock(finished),
                str(item.get("attempts", 0)),
                _took(item),
                seconds(timings.get("download_duration")),
                seconds(timings.get("encoding_duration")),
                _outcome(item) or "-",
                item["request_id"],
            ]
        )
    headers = [
        "STATUS",
        "KIND",
        "ACCEPTED",
        "READY/ERROR",
        "ATTEMPTS",
        "TOOK",
        "DOWNLOAD",
        "ENCODING",
        "REASON/OUTPUT",
        "REQUEST",
    ]
    return table(headers, rows)


def transformations(result: dict, *, width: int | None = None, wide: bool = False) -> str:
    rows = [
        [
            _status(item),
            (item.get("error_reason") or "-") if item["status"] == "error" else "-",
            short_clock(item.get("last_at")),
            item.get("asset") or "-",
            item["request_id"],
        ]
        for item in result["transformations"]
    ]
    headers = ["STATUS", "REASON", "LAST EVENT", "ASSET", "REQUEST"]
    if wide:
        return table(headers, rows)
    width = terminal_width() if width is None else width
    return table(headers, rows, width=width, spill=[(3, "")])


def assets(result: dict, *, width: int | None = None, wide: bool = False) -> str:
    rows = []
    for item in result["assets"]:
        counts = item["counts"]
        rows.append(
            [
                clock(item["last_activity"]),
                str(counts.get("ready", 0)),
                str(counts.get("error", 0)),
                str(counts.get("accepted", 0)),
                str(counts.get("stuck", 0)),
                item["asset"],
            ]
        )
    headers = ["LAST ACTIVITY", "READY", "ERROR", "ACCEPTED", "STUCK", "ASSET"]
    if wide:
        return table(headers, rows)
    width = terminal_width() if width is None else width
    return table(headers, rows, width=width, spill=[(5, "")])


def projections(status: list[dict]) -> str:
    """One row per projection; a checkpoint past the log's head is an error row, in red."""
    rows, ahead = [], []
    for row in status:
        error = row.get("error")
        problem = (
            "-" if not error else f"stopped at position {error['position']}: {error['message']}"
        )
        lag = str(row["lag"])
        if row.get("state") == "ahead_of_log":
            ahead.append(len(rows) + 1)  # its line, below the header
            lag = f"{lag} (ahead of the log)"
            if not error:
                problem = "checkpoint past the log's head: `ikledger rebuild`"
        rows.append([row["name"], str(row["version"]), str(row["checkpoint"]), lag, problem])
    lines = table(["NAME", "VERSION", "CHECKPOINT", "LAG", "LAST ERROR"], rows).split("\n")
    if ahead:
        import click  # styles are dropped by click.echo when not on a terminal

        for index in ahead:
            lines[index] = click.style(lines[index], fg="red")
    return "\n".join(lines)


def stats(result: dict) -> str:
    """The overview's numbers: range, totals, durations, then tables by type, reason, bucket."""
    t, d = result["transformations"], result["accepted_to_ready_ms"]
    since = clock(result["since"]) if result["since"] else "the first event"
    until = clock(result["until"]) if result["until"] else "now"
    lines = [
        f"from {since} to {until}, by {result['bucket']}",
        "transformations  "
        + "  ".join(f"{s} {t[s]}" for s in ("ready", "error", "stuck", "running")),
        f"accepted->ready  count {d['count']}"
        + "".join(f"  p{p} {seconds(d[f'p{p}'])}" for p in (50, 95, 99)),
        "",
        table(["type", "events"], sorted(result["events_by_type"].items())),
    ]
    if result["errors_by_reason"]:
        lines += ["", table(["reason", "errors"], sorted(result["errors_by_reason"].items()))]
    if result["buckets"]:
        keys = ("events", "ready", "error", "stuck")
        rows = [[clock(b["start"]), *(b[k] for k in keys)] for b in result["buckets"]]
        lines += ["", table(["bucket", *keys], rows)]
    return "\n".join(lines)
