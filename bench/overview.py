"""Issue 21's read side: GET /stats, GET /events?q= and the Overview page over the big log.

wrk, 8 connections, one path per measurement: /stats for all time and for one day
(by 1h), /events?q= for a word found in one body only (a token of an event id from
the middle of the log), and /ui/overview over all time by day. Each run starts the
server once and measures the four in turn; a bare Falcon+waitress app answering a
fixed small document is measured in the same run as the floor. Targets (issue 21):
/stats p99 <= 50 ms, the Overview p99 <= 100 ms, /events?q= p99 <= 200 ms.

    .venv/bin/python -m bench.run --only overview [--quick]
"""

from __future__ import annotations

import re
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

from . import harness, servers
from .harness import Figure, spread
from .load import wrk

READERS = 8
TARGETS_MS = {
    "stats all time": 50.0,
    "stats one day": 50.0,
    "overview page": 100.0,
    "search": 200.0,
}


def probes(log: Path) -> tuple[str, str]:
    """The day of the middle event, and a word of its body that no other body holds."""
    conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    try:
        (last,) = conn.execute("SELECT max(position) FROM events").fetchone()
        event_id, created_at = conn.execute(
            "SELECT id, created_at FROM events WHERE position = ?", (last // 2,)
        ).fetchone()
    finally:
        conn.close()
    words = sorted(re.findall(r"[^\W_]+", event_id.lower()), key=len, reverse=True)
    return created_at[:10], words[0]


def paths(log: Path) -> dict[str, str]:
    day, word = probes(log)
    after = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    return {
        "stats all time": "/stats?bucket=1d",
        "stats one day": f"/stats?since={day}T00:00:00Z&until={after}T00:00:00Z&bucket=1h",
        "overview page": "/ui/overview?since=&bucket=1d",
        "search": f"/events?q={quote(word)}",
    }


def run(plan, log: Path) -> list[Figure]:
    folder = harness.WORK / "overview"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = paths(log)
    files = {}
    for name, path in chosen.items():
        files[name] = folder / f"{name.replace(' ', '_')}.req"
        files[name].write_text(path + "\n")
    ours: dict[str, list[dict]] = {name: [] for name in chosen}
    bare = []

    def measure(port: int, requests: Path) -> dict:
        if plan.warmup_seconds:
            wrk(port, requests, mode="get", connections=READERS, seconds=plan.warmup_seconds)
        return wrk(port, requests, mode="get", connections=READERS, seconds=plan.query_seconds)

    for i in range(plan.runs):
        with servers.bare(threads=plan.server_threads) as port:
            bare.append(measure(port, files["stats all time"]))
        with servers.ikledger(log, threads=plan.server_threads, log=folder / "serve.log") as port:
            for name in chosen:
                ours[name].append(measure(port, files[name]))
        print(f"  overview run {i + 1}: " + ", ".join(
            f"{name} p99 {ours[name][-1]['p99_us'] / 1000:.2f} ms" for name in chosen
        ), flush=True)  # fmt: skip
    floor = spread([r["p99_us"] / 1000 for r in bare])
    figures = []
    for name, path in chosen.items():
        runs = ours[name]
        bad = sum(r["non2xx"] + r["errors"] for r in runs)
        figures.append(
            Figure("21 overview", f"GET {path.split('?')[0]} ({name}) p99, 8 readers", "ms",
                   spread([r["p99_us"] / 1000 for r in runs]), floor,
                   "bare Falcon+waitress fixed answer, p99", "max_value", TARGETS_MS[name],
                   f"GET {path}; non-2xx+errors {bad}",
                   extra={"rps": [r["rps"] for r in runs]})
        )  # fmt: skip
    return figures
