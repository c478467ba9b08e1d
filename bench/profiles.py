"""Profiles of what bounds a missed target, taken after the measured runs (py-spy)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import harness, servers
from .profile import py_spy, record, summarise

SECONDS = 5


def _bounds_text(summary: dict) -> str:
    own = ", ".join(f"{name} {pct}%" for name, pct in summary["own"][:6])
    return f"py-spy, {summary['samples']} samples; most own time: {own}."


def _ingest(plan, folder: Path) -> dict:
    from .ingest import _requests
    from .load import write_posts, wrk

    req = folder / "ingest.req"
    write_posts(req, _requests(int(plan.ingest_requests / 2), seed=43), int(time.time()))
    db = folder / "ingest.db"
    for suffix in ("", "-wal", "-shm"):  # a fresh log, and fresh read models for it
        Path(f"{db}{suffix}").unlink(missing_ok=True)
        Path(f"{folder / 'ingest.projections.db'}{suffix}").unlink(missing_ok=True)
    out = folder / "ingest.txt"
    with servers.ikledger(db, threads=None, log=folder / "ingest.log") as port:
        pid = servers.pid(port)
        spy = record(pid, SECONDS, out, gil=True, children=True)
        wrk(port, req, mode="post", connections=plan.connections, seconds=SECONDS + 1)
        spy.wait(30)
    return summarise(out)


def _append(plan, folder: Path) -> dict:
    from .append import THREADS, _events, run_ikledger

    events = _events(plan.append_events)
    out = folder / "append.txt"
    spy = record(os.getpid(), SECONDS, out)
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        run_ikledger(folder / "append.db", events, THREADS)
    spy.wait(30)
    return summarise(out)


def _query(plan, folder: Path, big: Path, probes: dict) -> dict:
    from .load import wrk
    from .query import READERS, path_for

    req = folder / "query.req"
    req.write_text("\n".join(path_for(u) for _, u in sorted(probes.items())) + "\n")
    out = folder / "query.txt"
    with servers.ikledger(big, threads=plan.server_threads, log=folder / "query.log") as port:
        pid = servers.pid(port)
        spy = record(pid, SECONDS, out, gil=True, children=True)
        wrk(port, req, mode="get", connections=READERS, seconds=SECONDS + 1)
        spy.wait(30)
    return summarise(out)


def _rebuild(plan, folder: Path, log: Path) -> dict:
    # Native frames: the rebuild's work is SQLite's, in C; Python frames alone show only
    # the imports and the calls that wait for it.
    out = folder / "rebuild.txt"
    tool = py_spy()
    harness.run_with_rss([tool, "record", "-r", "100", "--native", "--format", "raw", "-o", str(out),
                          "--", sys.executable, "-m", "bench.rebuild", "rebuild", str(log)],
                         timeout=900)
    return summarise(out)


def run(plan, missed, results: dict, context: dict) -> None:
    if py_spy() is None:
        results["errors"]["profiles"] = "py-spy is not installed (pip install '.[bench]')"
        return
    folder = harness.WORK / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    benches = {f.bench for f in missed}
    jobs = []
    if "1 ingest" in benches:
        jobs.append(("ingest server under wrk load (POST /webhook)", lambda: _ingest(plan, folder)))
    if "2 append" in benches:
        jobs.append(("store.append from 8 threads", lambda: _append(plan, folder)))
    if "3 rebuild" in benches:
        if context.get("big"):
            jobs.append((f"timeline rebuild of {plan.big_events:,} events (native frames)",
                         lambda: _rebuild(plan, folder, context["big"])))
    if "4 query" in benches and context.get("big"):
        jobs.append(("query server under wrk load (GET /timeline)",
                     lambda: _query(plan, folder, context["big"], context["probes"])))
    for name, job in jobs:
        print(f"  profiling: {name}", flush=True)
        summary = job()
        results["profiles"][name] = summary
        results["bounds"][name] = _bounds_text(summary)
