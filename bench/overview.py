"""Issue 21's read side: GET /stats, GET /events?q= and the Overview page over the big log.

wrk, 8 connections, one path per measurement: /stats for all time and for one day
(by 1h), /events?q= for a word found in one body only (a token of an event id from
the middle of the log), and /ui/overview over all time by day. Each run starts the
server once and measures the four in turn; a bare Falcon+waitress app answering a
fixed small document is measured in the same run as the floor. Targets (issue 21):
/stats p99 <= 50 ms, the Overview p99 <= 100 ms, /events?q= p99 <= 200 ms.

Also: the search index's bytes (its FTS5 tables, by dbstat) against the log's raw body
bytes (<= 0.3x), and ingest through `serve` keeping every read model against the same
with IKLEDGER_PROJECTIONS=timeline,event_types (no search), interleaved, fresh logs
(>= 0.95x). The rebuild with every read model is benchmark 3's (`bench/rebuild.py`).

    .venv/bin/python -m bench.run --only overview [--quick]
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

from . import harness, servers
from .harness import Figure, spread
from .load import wrk

READERS = 8
WRK_TIMEOUT_S = 5  # bench.load.wrk's default request timeout
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


def p99_ms(result: dict) -> float:
    """wrk's p99 in ms; at least its timeout when a request timed out or none answered.

    wrk's percentiles count only answered requests: a path too slow to answer within
    the timeout would otherwise read as fast (0 ms when nothing answered).
    """
    p99 = result["p99_us"] / 1000
    if result["requests"] == 0 or result["errors"]:
        return max(p99, WRK_TIMEOUT_S * 1000.0)
    return p99


def index_bytes(log: Path) -> dict[str, int]:
    """Bytes of the search projection's tables (dbstat pages), and of the log's bodies."""
    proj = Path(str(log).removesuffix(".db") + ".projections.db")
    conn = sqlite3.connect(f"file:{proj}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE 'search_%' GROUP BY name"
        ).fetchall()
    finally:
        conn.close()
    conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    try:
        (bodies,) = conn.execute("SELECT sum(length(body)) FROM events").fetchone()
    finally:
        conn.close()
    sizes = {name: size for name, size in rows}
    return {
        "text": sum(v for k, v in sizes.items() if k.startswith("search_text_")),
        "listing": sum(v for k, v in sizes.items() if k.startswith("search_events_")),
        "bodies": bodies,
        "tables": sizes,
    }


WITHOUT_SEARCH = "timeline,event_types"  # IKLEDGER_PROJECTIONS of the ingest baseline


def ingest_pair(plan) -> list[Figure]:
    """Ingest through `serve` keeping every read model, against the same without search.

    Interleaved run by run, each on a fresh log, as benchmark 1 measures it (warm-up,
    one wrk run at `plan.connections`, the server tree's CPU until caught up).
    """
    from .ingest import _requests, measured_run
    from .load import write_posts

    folder = harness.WORK / "overview" / "ingest"
    folder.mkdir(parents=True, exist_ok=True)
    measured = _requests(plan.ingest_requests, seed=51)
    warm = _requests(plan.ingest_warmup_requests, seed=52)
    variants = {"without search": {"IKLEDGER_PROJECTIONS": WITHOUT_SEARCH}, "every read model": {}}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for i in range(plan.runs):
        for name, env in variants.items():
            tag = name.replace(" ", "_")
            req_file, warm_file = folder / f"{tag}-{i}.req", folder / f"{tag}-{i}.warm"
            now = int(time.time())
            write_posts(req_file, measured, now)
            write_posts(warm_file, warm, now)
            db = folder / f"{tag}-{i}.db"
            for path in (db, db.with_suffix(".projections.db")):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            with servers.ikledger(db, threads=None, env=env, log=folder / f"{tag}-{i}.log") as port:
                if plan.warmup_seconds:
                    wrk(port, warm_file, mode="post", connections=plan.connections,
                        seconds=plan.warmup_seconds)
                result = measured_run(port, req_file, plan)
            results[name].append(result)
            print(f"  overview ingest {name} run {i + 1}: {result['rps']:.0f} req/s, "
                  f"p99 {result['p99_us'] / 1000:.1f} ms, non-2xx {result['non2xx']}, "
                  f"CPU {result['cpu_us_per_2xx']:.0f} us/2xx", flush=True)
    ours, base = results["every read model"], results["without search"]
    bad = sum(r["non2xx"] + r["errors"] for r in ours + base)
    return [
        Figure("21 overview", "ingest with the search projection", "req/s",
               spread([r["rps"] for r in ours]), spread([r["rps"] for r in base]),
               f"same serve with IKLEDGER_PROJECTIONS={WITHOUT_SEARCH}", "min_ratio", 0.95,
               f"{plan.connections} connections, {plan.ingest_seconds} s per run, fresh log per "
               f"run; non-2xx+errors {bad}",
               extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(ours, base)]}),
        Figure("21 overview", "server CPU per acknowledged request, with search", "µs",
               spread([r["cpu_us_per_2xx"] for r in ours]),
               spread([r["cpu_us_per_2xx"] for r in base]),
               "same without the search projection", "info", None,
               "the server tree's CPU from the wrk run until the read models caught up, / 2xx: "
               "the search projection's share of the catch-up shows here"),
    ]  # fmt: skip


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
        # A server per path: requests a slow path left queued must not be the next one's.
        for name in chosen:
            with servers.ikledger(log, threads=plan.server_threads, log=folder / "serve.log") as port:
                ours[name].append(measure(port, files[name]))
        print(f"  overview run {i + 1}: " + ", ".join(
            f"{name} p99 {p99_ms(ours[name][-1]):.2f} ms" for name in chosen
        ), flush=True)  # fmt: skip
    floor = spread([p99_ms(r) for r in bare])
    figures = []
    for name, path in chosen.items():
        runs = ours[name]
        bad = sum(r["non2xx"] + r["errors"] for r in runs)
        figures.append(
            Figure("21 overview", f"GET {path.split('?')[0]} ({name}) p99, 8 readers", "ms",
                   spread([p99_ms(r) for r in runs]), floor,
                   "bare Falcon+waitress fixed answer, p99", "max_value", TARGETS_MS[name],
                   f"GET {path}; non-2xx+errors {bad}",
                   extra={"rps": [r["rps"] for r in runs]})
        )  # fmt: skip
    sizes = index_bytes(log)
    figures.append(
        Figure("21 overview", "search index bytes vs raw body bytes", "bytes",
               spread([sizes["text"]]), spread([sizes["bodies"]]), "raw body bytes of the log",
               "max_ratio", 0.3,
               f"FTS5 tables (contentless, detail=none) by dbstat; the listing of every event "
               f"beside it (search_events_*, not counted): {sizes['listing']:,} bytes; one "
               f"measurement of a deterministic build",
               extra={"tables": sizes["tables"]})
    )  # fmt: skip
    return figures + ingest_pair(plan)
