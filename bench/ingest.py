"""Benchmark 1: signed, validated, durable ingest through `ikledger serve`, versus bare Falcon.

The bare endpoint runs under waitress with `plan.server_threads` threads and `ikledger
serve` at its default settings (the issue's definition), one at a time, alternating
(bare, ikledger, bare, ikledger, …) so that drift on a shared machine hits both alike.
Each run starts a fresh server (and, for ikledger, a fresh log), warms it up briefly
with requests of its own, then takes a fixed-duration wrk run at 16 connections.

Efficiency: the user + system CPU time of the server's whole process tree (psutil,
read just before the measured wrk run and again once the read models have caught up
with it) divided by the 2xx answers of that run: every process `serve` starts counts,
and so does the catch-up work those requests caused, wherever it runs.
"""

from __future__ import annotations

import json
import time

from . import harness, servers
from .events import distinct_deliveries
from .harness import Figure, spread
from .load import write_posts, wrk


def _requests(count: int, seed: int) -> list:
    return distinct_deliveries(count, seed=seed)


def settle(port: int, limit: float = 10.0) -> float:
    """Wait (at most `limit` s) until /healthz reports no projection behind the log."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        status, body = harness.http_get(port, "/healthz")
        rows = json.loads(body).get("projections") if status == 200 else None
        if not rows or all(row.get("lag", 0) == 0 for row in rows):
            break
        time.sleep(0.02)
    return time.monotonic() - started


def measured_run(port: int, req_file, plan) -> dict:
    """One measured wrk run, with the server tree's CPU time per 2xx answer."""
    root = servers.pid(port)
    cpu_before = harness.tree_cpu_seconds(root)
    result = wrk(port, req_file, mode="post", connections=plan.connections, seconds=plan.ingest_seconds)
    result["settle_s"] = settle(port)
    cpu = harness.tree_cpu_seconds(root) - cpu_before
    ok = result["requests"] - result["non2xx"]
    result["cpu_seconds"] = cpu
    result["cpu_us_per_2xx"] = cpu / ok * 1e6 if ok else float("inf")
    return result


def run(plan) -> tuple[list[Figure], dict]:
    folder = harness.WORK / "ingest"
    folder.mkdir(parents=True, exist_ok=True)
    measured = _requests(plan.ingest_requests, seed=41)
    warm = _requests(plan.ingest_warmup_requests, seed=42)
    results: dict[str, list[dict]] = {"bare": [], "ikledger": []}
    for i in range(plan.runs):
        for name in ("bare", "ikledger"):
            now = int(time.time())
            req_file, warm_file = folder / f"{name}-{i}.req", folder / f"{name}-{i}.warm"
            write_posts(req_file, measured, now)
            write_posts(warm_file, warm, now)
            if name == "bare":
                server = servers.bare(threads=plan.server_threads, log=folder / "bare.log")
            else:
                db = folder / f"ingest-{i}.db"
                views = folder / f"ingest-{i}.projections.db"  # a fresh log needs fresh ones
                for suffix in ("", "-wal", "-shm"):
                    harness.Path(f"{db}{suffix}").unlink(missing_ok=True)
                    harness.Path(f"{views}{suffix}").unlink(missing_ok=True)
                server = servers.ikledger(db, threads=None, log=folder / f"ingest-{i}.log")
            with server as port:
                if plan.warmup_seconds:
                    wrk(port, warm_file, mode="post", connections=plan.connections,
                        seconds=plan.warmup_seconds)
                result = measured_run(port, req_file, plan)
            results[name].append(result)
            print(f"  ingest {name} run {i + 1}: {result['rps']:.0f} req/s, "
                  f"p99 {result['p99_us'] / 1000:.1f} ms, non-2xx {result['non2xx']}, "
                  f"errors {result['errors']}, wrapped {result['wrapped']}, "
                  f"CPU {result['cpu_us_per_2xx']:.0f} us/2xx", flush=True)
    bare, ik = results["bare"], results["ikledger"]
    wrapped = sum(r["wrapped"] for r in ik)
    note = (f"{plan.connections} connections, ikledger serve at its defaults, bare waitress "
            f"threads {plan.server_threads}, {plan.ingest_seconds} s per run")
    if wrapped:
        note += f"; WARNING: ikledger runs resent {wrapped} ids (request list too short)"
    figures = [
        Figure("1 ingest", "ingest throughput", "req/s",
               spread([r["rps"] for r in ik]), spread([r["rps"] for r in bare]),
               "bare Falcon+waitress, parse only", "min_ratio", 0.85, note,
               extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(ik, bare)]}),
        Figure("1 ingest", "ingest p99 latency", "ms",
               spread([r["p99_us"] / 1000 for r in ik]), spread([r["p99_us"] / 1000 for r in bare]),
               "bare endpoint p99", "max_value", 25.0, "wrk latency percentile; target on the median"),
        Figure("1 ingest", "server CPU per acknowledged request", "µs",
               spread([r["cpu_us_per_2xx"] for r in ik]), spread([r["cpu_us_per_2xx"] for r in bare]),
               "bare endpoint, same measure", "max_ratio", 2.0,
               "user+system CPU of the server's whole process tree (psutil), from just before "
               "the measured wrk run until /healthz shows the read models caught up, / its 2xx",
               extra={"cpu_seconds": [r["cpu_seconds"] for r in ik]}),
        Figure("1 ingest", "ingest non-2xx + socket errors", "responses",
               spread([r["non2xx"] + r["errors"] for r in ik]),
               spread([r["non2xx"] + r["errors"] for r in bare]),
               "bare endpoint", "eq_value", 0, "every run must be 0"),
    ]
    return figures, {"max_rps": spread([r["rps"] for r in ik])["median"], "runs": results}
