"""Benchmark 1: signed, validated, durable ingest through `ikledger serve`, versus bare Falcon.

Both servers run under waitress with the same thread count, one at a time, alternating
(bare, ikledger, bare, ikledger, …) so that drift on a shared machine hits both alike.
Each run starts a fresh server (and, for ikledger, a fresh log), warms it up briefly
with requests of its own, then takes a fixed-duration wrk run at 16 connections.
"""

from __future__ import annotations

import time

from . import harness, servers
from .events import distinct_deliveries
from .harness import Figure, spread
from .load import write_posts, wrk


def _requests(count: int, seed: int) -> list:
    return distinct_deliveries(count, seed=seed)


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
                for suffix in ("", "-wal", "-shm"):
                    harness.Path(f"{db}{suffix}").unlink(missing_ok=True)
                server = servers.ikledger(db, threads=plan.server_threads, log=folder / f"ingest-{i}.log")
            with server as port:
                if plan.warmup_seconds:
                    wrk(port, warm_file, mode="post", connections=plan.connections,
                        seconds=plan.warmup_seconds)
                result = wrk(port, req_file, mode="post", connections=plan.connections,
                             seconds=plan.ingest_seconds)
            results[name].append(result)
            print(f"  ingest {name} run {i + 1}: {result['rps']:.0f} req/s, "
                  f"p99 {result['p99_us'] / 1000:.1f} ms, non-2xx {result['non2xx']}, "
                  f"errors {result['errors']}, wrapped {result['wrapped']}", flush=True)
    bare, ik = results["bare"], results["ikledger"]
    wrapped = sum(r["wrapped"] for r in ik)
    note = f"{plan.connections} connections, waitress threads {plan.server_threads}, {plan.ingest_seconds} s per run"
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
        Figure("1 ingest", "ingest non-2xx + socket errors", "responses",
               spread([r["non2xx"] + r["errors"] for r in ik]),
               spread([r["non2xx"] + r["errors"] for r in bare]),
               "bare endpoint", "eq_value", 0, "every run must be 0"),
    ]
    return figures, {"max_rps": spread([r["rps"] for r in ik])["median"], "runs": results}
