"""Ingest through `ikledger serve` on PostgreSQL: against SQLite, and two receivers against one.

Same harness as benchmark 1 (bench/ingest.py: signed request files, wrk, a fresh log per
run, a short warm-up, CPU per 2xx): each run gets a fresh database on the bench's
cluster, and each receiver its own read-model file (IKLEDGER_PROJECTIONS_DB), as a
deployment would.

- `versus_sqlite`: one receiver on SQLite, then one on PostgreSQL, alternating.
- `scale_out`: one receiver driven by two wrk processes of half the connections each,
  then two receivers on one database, one wrk process each, alternating; the figure is
  the sum of both wrk processes' req/s. After each run the log must hold exactly the
  acknowledged events, at positions 1..N (`verify` over the whole chain).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

from . import harness, servers
from .events import distinct_deliveries
from .harness import Figure, spread
from .ingest import measured_run, settle
from .load import write_posts, wrk


def _files(folder, name: str, measured: list, warm: list):
    now = int(time.time())
    req, warm_file = folder / f"{name}.req", folder / f"{name}.warm"
    write_posts(req, measured, now)
    write_posts(warm_file, warm, now)
    return req, warm_file


def _receiver(db: str, folder, name: str, plan):
    views = folder / f"{name}.projections.db"
    for suffix in ("", "-wal", "-shm"):
        harness.Path(f"{views}{suffix}").unlink(missing_ok=True)
    return servers.ikledger(
        db,
        threads=plan.server_threads,
        env={"IKLEDGER_PROJECTIONS_DB": str(views)},
        log=folder / f"{name}.log",
    )


def _fresh_sqlite(folder, name: str) -> str:
    db = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        harness.Path(f"{db}{suffix}").unlink(missing_ok=True)
    return str(db)


def versus_sqlite(plan, cluster) -> tuple[list[Figure], dict]:
    folder = harness.WORK / "pg_ingest"
    folder.mkdir(parents=True, exist_ok=True)
    measured = distinct_deliveries(plan.ingest_requests, seed=41)
    warm = distinct_deliveries(plan.ingest_warmup_requests, seed=42)
    results: dict[str, list[dict]] = {"sqlite": [], "postgres": []}
    for i in range(plan.runs):
        for name in ("sqlite", "postgres"):
            req, warm_file = _files(folder, f"{name}-{i}", measured, warm)
            database = cluster.create_database() if name == "postgres" else None
            db = cluster.url(database) if database else _fresh_sqlite(folder, f"{name}-{i}")
            try:
                with _receiver(db, folder, f"{name}-{i}", plan) as port:
                    if plan.warmup_seconds:
                        wrk(
                            port,
                            warm_file,
                            mode="post",
                            connections=plan.connections,
                            seconds=plan.warmup_seconds,
                        )
                    # The database server's CPU counts too: SQLite's is in the receiver.
                    roots = _postmaster(cluster) if database else []
                    server_cpu = _tree_cpu(roots)
                    result = measured_run(port, req, plan)
                    server_cpu = _tree_cpu(roots) - server_cpu
            finally:
                if database:
                    cluster.drop_database(database)
            ok = result["requests"] - result["non2xx"]
            result["server_cpu_us_per_2xx"] = server_cpu / ok * 1e6 if ok else float("inf")
            result["total_cpu_us_per_2xx"] = (
                result["cpu_us_per_2xx"] + result["server_cpu_us_per_2xx"]
            )
            results[name].append(result)
            print(
                f"  pg ingest {name} run {i + 1}: {result['rps']:.0f} req/s, "
                f"p99 {result['p99_us'] / 1000:.1f} ms, non-2xx {result['non2xx']}, "
                f"errors {result['errors']}, wrapped {result['wrapped']}, "
                f"CPU {result['total_cpu_us_per_2xx']:.0f} us/2xx",
                flush=True,
            )
    pg, lite = results["postgres"], results["sqlite"]
    note = (
        f"{plan.connections} connections, waitress threads {plan.server_threads}, "
        f"{plan.ingest_seconds} s per run; fresh log and read models per run"
    )
    wrapped = sum(r["wrapped"] for r in pg)
    if wrapped:
        note += f"; WARNING: resent {wrapped} ids (request list too short)"
    figures = [
        Figure(
            "8 pg ingest",
            "ingest throughput, PostgreSQL log",
            "req/s",
            spread([r["rps"] for r in pg]),
            spread([r["rps"] for r in lite]),
            "the same `ikledger serve` on a SQLite log",
            "min_ratio",
            0.8,
            note,
            extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(pg, lite)]},
        ),
        Figure(
            "8 pg ingest",
            "8b: ingest CPU per acknowledged request, receiver + PostgreSQL",
            "µs",
            spread([r["total_cpu_us_per_2xx"] for r in pg]),
            spread([r["total_cpu_us_per_2xx"] for r in lite]),
            "the same `ikledger serve` on a SQLite log (its database work is in the receiver)",
            "max_ratio",
            1.4,
            "user+system CPU of the receiver's process tree and, on PostgreSQL, the server's "
            "(postmaster and every backend: psutil) from the wrk run's start until the read "
            "models caught up, / 2xx"
            + ("" if _postmaster(cluster) else "; WARNING: the server's CPU is not counted"),
            extra={
                "receiver_us": [r["cpu_us_per_2xx"] for r in pg],
                "postgres_us": [r["server_cpu_us_per_2xx"] for r in pg],
            },
        ),
        Figure(
            "8 pg ingest",
            "ingest p99 latency, PostgreSQL log",
            "ms",
            spread([r["p99_us"] / 1000 for r in pg]),
            spread([r["p99_us"] / 1000 for r in lite]),
            "SQLite p99",
            "info",
            None,
            "wrk latency percentile",
        ),
        Figure(
            "8 pg ingest",
            "ingest non-2xx + socket errors, PostgreSQL log",
            "responses",
            spread([r["non2xx"] + r["errors"] for r in pg]),
            spread([r["non2xx"] + r["errors"] for r in lite]),
            "SQLite",
            "eq_value",
            0,
            "every run must be 0",
        ),
    ]
    return figures, {"postgres_rps": spread([r["rps"] for r in pg])["median"]}


def _parallel_wrk(targets: list[tuple[int, object]], plan, connections: int) -> list[dict]:
    """One wrk process per (port, request file), all at once; their results in order."""
    out: list = [None] * len(targets)

    def go(n, port, req):
        try:
            out[n] = wrk(
                port, req, mode="post", connections=connections, seconds=plan.ingest_seconds
            )
        except BaseException as exc:  # noqa: BLE001 -- re-raised below
            out[n] = exc

    threads = [
        threading.Thread(target=go, args=(n, p, r), daemon=True) for n, (p, r) in enumerate(targets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(plan.ingest_seconds + 90)
    for r in out:
        if isinstance(r, BaseException):
            raise RuntimeError("a wrk process failed") from r
        if r is None:
            raise RuntimeError("a wrk process did not finish in time")
    return out


def _check_gap_free(url: str, acknowledged: int) -> dict:
    """The log holds every acknowledged event at positions 1..N and verifies."""
    from store import open_store

    with open_store(url, timeout=30) as store:
        report = store.verify()
        last = store.last_position()
    if not report.ok or report.events != last or last < acknowledged:
        raise AssertionError(
            f"log after the run: {report}, last {last}, acknowledged {acknowledged}"
        )
    return {"events": report.events, "last_position": last}


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def _postmaster(cluster) -> list[int]:
    """The throwaway cluster's postmaster pid (its tree holds every backend); [] if external."""
    data = getattr(cluster, "data", None)
    try:
        return [int((data / "postmaster.pid").read_text().split()[0])] if data else []
    except (OSError, ValueError, IndexError):
        return []


def _tree_cpu(roots: list[int]) -> float:
    return sum(harness.tree_cpu_seconds(pid) for pid in roots)


def scale_out(plan, cluster) -> list[Figure]:
    folder = harness.WORK / "pg_scale"
    folder.mkdir(parents=True, exist_ok=True)
    halves = [distinct_deliveries(plan.ingest_requests, seed=s) for s in (51, 52)]
    warm = [distinct_deliveries(plan.ingest_warmup_requests, seed=s) for s in (53, 54)]
    half = max(1, plan.connections // 2)
    results: dict[str, list[dict]] = {"one": [], "two": []}
    for i in range(plan.runs):
        for name in ("one", "two"):
            files = [_files(folder, f"{name}-{i}-{k}", halves[k], warm[k]) for k in (0, 1)]
            database = cluster.create_database()
            url = cluster.url(database)
            try:
                with contextlib.ExitStack() as stack:
                    count = 1 if name == "one" else 2
                    ports = [
                        stack.enter_context(_receiver(url, folder, f"{name}-{i}-{k}", plan))
                        for k in range(count)
                    ]
                    ports = ports * (2 // count)  # one receiver takes both load generators
                    if plan.warmup_seconds:
                        _parallel_wrk(
                            [(ports[k], files[k][1]) for k in (0, 1)],
                            replace(plan, ingest_seconds=plan.warmup_seconds),
                            half,
                        )
                    roots = [servers.pid(p) for p in set(ports)] + _postmaster(cluster)
                    cpu, busy = _tree_cpu(roots), _machine_busy()
                    runs = _parallel_wrk([(ports[k], files[k][0]) for k in (0, 1)], plan, half)
                    busy = _busy_fraction(busy, _machine_busy())
                    for port in set(ports):
                        settle(port)
                    cpu = _tree_cpu(roots) - cpu
                ok = sum(r["requests"] - r["non2xx"] for r in runs)
                check = _check_gap_free(url, ok)
            finally:
                cluster.drop_database(database)
            result = {
                "rps": sum(r["rps"] for r in runs),
                "non2xx": sum(r["non2xx"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "acknowledged": ok,
                "machine_busy": busy,
                "cpu_us_per_2xx": cpu / ok * 1e6 if ok else float("inf"),
                **check,
            }
            results[name].append(result)
            print(
                f"  pg scale-out {name} receiver(s) run {i + 1}: {result['rps']:.0f} req/s, "
                f"non-2xx {result['non2xx']}, errors {result['errors']}, "
                f"log 1..{check['last_position']} verified, machine CPU busy {busy:.0%}, "
                f"receivers + PostgreSQL {result['cpu_us_per_2xx']:.0f} us CPU per 2xx",
                flush=True,
            )
    one, two = results["one"], results["two"]
    note = (
        f"two wrk processes of {half} connections each, against one receiver or one per "
        f"receiver; {plan.ingest_seconds} s per run; after every run `verify` passes and "
        "the log holds positions 1..N with N ≥ the acknowledged events (a warm-up adds its own)"
    )
    return [
        Figure(
            "9 pg scale-out",
            "two receivers on one PostgreSQL",
            "req/s",
            spread([r["rps"] for r in two]),
            spread([r["rps"] for r in one]),
            "one receiver on the same server, same load generators",
            "min_ratio",
            1.0,
            note,
            extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(two, one)]},
        ),
        Figure(
            "9 pg scale-out",
            "scale-out: machine CPU busy during the measured run",
            "%",
            spread([100 * r["machine_busy"] for r in two]),
            spread([100 * r["machine_busy"] for r in one]),
            "one receiver",
            "info",
            None,
            "all cores, from /proc/stat, over the wrk run: what bounds the row above when it "
            "is near 100 (receivers, PostgreSQL, wrk and other work share the cores)",
        ),
        Figure(
            "9 pg scale-out",
            "scale-out: CPU per acknowledged request, receivers + PostgreSQL",
            "µs",
            spread([r["cpu_us_per_2xx"] for r in two]),
            spread([r["cpu_us_per_2xx"] for r in one]),
            "one receiver",
            "info",
            None,
            "user+system CPU of the receivers' and the PostgreSQL server's process trees "
            "(psutil) from the wrk run's start until the read models caught up, / 2xx",
        ),
        Figure(
            "9 pg scale-out",
            "two receivers: non-2xx + socket errors",
            "responses",
            spread([r["non2xx"] + r["errors"] for r in two]),
            spread([r["non2xx"] + r["errors"] for r in one]),
            "one receiver",
            "eq_value",
            0,
            "every run must be 0",
        ),
    ]
