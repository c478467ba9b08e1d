"""Plain-text rendering of query results for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def seconds(ms: float | None) -> str:
    """Milliseconds as seconds with one decimal ("13.2 s"); "-" when unknown."""
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def clock(timestamp: str | None) -> str:
    """An ISO time as "YYYY-MM-DD HH:MM:SS.mmm"; "-" when absent."""
    return "-" if not timestamp else timestamp.replace("T", " ").removesuffix("Z")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, sized to their widest cell."""
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def timeline(result: dict) -> str:
    """One row per transformation: status (`stuck` for a stuck accepted one), times,
    terminal events received, durations, reason or output."""
    rows = []
    for item in result["transformations"]:
        timings = item.get("timings") or {}
        # The event that decided the status: the other terminal one may exist too.
        failed = item["status"] == "error"
        finished = item.get("error_at") if failed else item.get("ready_at")
        outcome = item.get("error_reason") if failed else item.get("output_url")
        rows.append(
            [
                "stuck" if item.get("stuck") else item["status"],
                item.get("kind") or "-",
                clock(item.get("accepted_at")),
                clock(finished),
                str(item.get("attempts", 0)),
                seconds(item.get("accepted_to_ready_ms")),
                seconds(timings.get("download_duration")),
                seconds(timings.get("encoding_duration")),
                outcome or item.get("request_url") or "-",
                item["request_id"],
            ]
        )
    headers = [
        "STATUS",
        "KIND",
        "ACCEPTED",
        "READY/ERROR",
        "ATTEMPTS",
        "TOTAL",
        "DOWNLOAD",
        "ENCODING",
        "REASON/OUTPUT",
        "REQUEST",
    ]
    count = len(rows)
    title = f"{result['asset']}: {count} transformation{'s' * (count != 1)} (log position {result['position']})"
    return title + "\n" + table(headers, rows)


def transformations(result: dict) -> str:
    rows = [
        [
            item["status"],
            item.get("error_reason") or "-",
            clock(item.get("last_at")),
            item.get("asset") or "-",
            item["request_id"],
        ]
        for item in result["transformations"]
    ]
    return table(["STATUS", "REASON", "LAST EVENT", "ASSET", "REQUEST"], rows)


def assets(result: dict) -> str:
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
    return table(["LAST ACTIVITY", "READY", "ERROR", "ACCEPTED", "STUCK", "ASSET"], rows)


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
