"""The forwarder's window read (its reload, every second) over a large pending backlog.

An ordered destination's window is `pending_by_key(limit=1000)`; before it was the 1,000
oldest pending deliveries (`pending`, still an unordered destination's). Each shape is a
backlog of pending deliveries queued straight into `fwd_items` (no log events: the read
touches none), then both reads run interleaved, `--calls` each per round:

- `one-key`: 1,000,000 pending, all of one key but every 1,000th (1,000 other keys);
- `distinct`: 1,000,000 pending, each its own key;
- `bench`: 20,000 pending over 400 keys, interleaved (benchmark 13's backlog).

    .venv/bin/python -m bench.forward_window [--backend sqlite|postgresql] [--rows N]

Prints milliseconds of wall time and of CPU per read: this process's, plus on
PostgreSQL the server's (its processes' CPU from /proc, a throwaway cluster's only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from store import open_store
from store.forwarding import Destination

LIMIT = 1000

SHAPES = {
    # Key of the n-th pending delivery (n from 1), as an SQL expression on both backends.
    "one-key": "CASE WHEN n % 1000 = 0 THEN 'k' || n ELSE 'stuck' END",
    "distinct": "'k' || n",
    "bench": "'k' || (n % 400)",
}


def fill(run, rows: int, key_sql: str) -> None:
    run(
        "INSERT INTO fwd_items (destination, position, event_id, key, state, attempts, "
        f"next_ms, replay_job) SELECT 'app', n, 'e' || n, {key_sql}, 'pending', 0, 0, NULL "
        "FROM numbers"
    )


def server_cpu(cluster) -> float:
    """CPU seconds of a throwaway cluster's processes so far (0 for an external one)."""
    data = getattr(cluster, "data", None)
    if data is None:
        return 0.0
    postmaster = int((Path(data) / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextmanager
def sqlite_backlog(shape: str, rows: int):
    with tempfile.TemporaryDirectory(prefix="ikl-window-") as folder:
        store = open_store(str(Path(folder) / "log.db"), timeout=5.0)
        try:
            state = store.forwarding()
            state.add_destination(Destination("app", "http://127.0.0.1:9/hook"))
            with state._transaction() as run:  # type: ignore[attr-defined]
                run(
                    "CREATE TEMP TABLE numbers AS WITH RECURSIVE c(n) AS "
                    "(SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?) SELECT n FROM c",
                    (rows,),
                )
                fill(run, rows, SHAPES[shape])
            yield state, None
        finally:
            store.close()


@contextmanager
def postgres_backlog(shape: str, rows: int):
    from .pg_append import server

    with server() as cluster:
        cluster.ensure_running()
        name = cluster.create_database()
        store = open_store(cluster.url(name), timeout=30.0)
        try:
            state = store.forwarding()
            state.add_destination(Destination("app", "http://127.0.0.1:9/hook"))
            with state._transaction() as run:  # type: ignore[attr-defined]
                run(
                    "CREATE TEMP TABLE numbers AS SELECT n FROM generate_series(1, ?) AS n",
                    (rows,),
                )
                fill(run, rows, SHAPES[shape])
            with cluster.admin(name) as conn:
                conn.execute("VACUUM ANALYZE fwd_items")
            yield state, cluster
        finally:
            store.close()
            cluster.drop_database(name)


def measure(state, cluster, read, calls: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per call of `read`."""
    wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu(cluster)
    for _ in range(calls):
        read(state)
    calls_ms = 1000 / calls
    return (
        (time.perf_counter() - wall) * calls_ms,
        (time.process_time() - cpu + server_cpu(cluster) - server) * calls_ms,
    )


READS = {
    "pending": lambda state: state.pending("app", limit=LIMIT),
    "pending_by_key": lambda state: state.pending_by_key("app", limit=LIMIT),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="one-key,distinct,bench")
    args = parser.parse_args()
    backlog = sqlite_backlog if args.backend == "sqlite" else postgres_backlog
    for shape in args.shapes.split(","):
        rows = 20_000 if shape == "bench" else args.rows
        with backlog(shape, rows) as (state, cluster):
            window = state.pending_by_key("app", limit=LIMIT)
            keys = len({item.key for item in window.items})
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in READS}
            for _ in range(args.rounds):
                for name, read in READS.items():
                    results[name].append(measure(state, cluster, read, args.calls))
            print(
                f"{args.backend} {shape} ({rows:,} pending; by key: {len(window.items)} held, {keys} keys)"
            )
            for name, runs in results.items():
                walls = ", ".join(f"{w:.2f}" for w, _ in runs)
                cpus = ", ".join(f"{c:.2f}" for _, c in runs)
                median = statistics.median(c for _, c in runs)
                print(f"  {name:15} wall ms {walls}; CPU ms {cpus} (median {median:.2f})")


if __name__ == "__main__":
    main()
