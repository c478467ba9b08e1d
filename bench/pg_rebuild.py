"""Rebuild of the timeline from a PostgreSQL log, versus a bare psycopg + json.loads loop.

The log is the generated SQLite log of benchmark 3 (bench/events.py, reused from
bench/work/db/), copied into a fresh database of the bench's cluster with binary COPY
(the same rows, chain values included: the chain is defined identically on both
backends) after `PostgresStore` made the schema; the head and the per-type counters are
set to match, and the filled log must `verify` with the SQLite log's head. Both children
alternate (bare, rebuild, …) and time themselves around their own work:

- bare: one server-side cursor, `SELECT position, type, body FROM events ORDER BY
  position`, binary rows fetched 5,000 at a time, `json.loads` of every body;
- rebuild: `ProjectionRunner.rebuild("timeline")` over `open_store(URL)`, into a fresh
  read-model file;
- and, to show what bounds it, benchmark 3's rebuild child over the SQLite log the
  events came from (the same projection work, read through `sqlite_source`).

    python -m bench.pg_rebuild bare URL
    python -m bench.pg_rebuild rebuild URL VIEWS.db
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import harness
from .harness import Figure, spread
from .rebuild import child as sqlite_child
from .rebuild import memory

COLUMNS = "position, id, type, created_at, received_at, scheme, chain, body"
TYPES = ["int8", "text", "text", "text", "text", "text", "bytea", "bytea"]


def fill(cluster, log: Path) -> tuple[str, dict]:
    """A new database holding the SQLite log at `log`; (its name, what the fill took)."""
    from store import SQLiteStore
    from store.postgres import PostgresStore

    name = cluster.create_database()
    url = cluster.url(name)
    PostgresStore(url, timeout=30).close()  # the schema, by the store's own migrations
    started = time.perf_counter()
    source = SQLiteStore(log)
    try:
        head = source.verify().head
        with cluster.admin(name) as conn, conn.cursor() as cur:
            with conn.transaction():
                with cur.copy(f"COPY events ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(TYPES)
                    for batch in source.read_batches(0, batch_size=5000):
                        for e in batch:
                            copy.write_row(
                                (
                                    e.position,
                                    e.id,
                                    e.type,
                                    e.created_at,
                                    e.received_at,
                                    e.scheme,
                                    e.chain,
                                    e.body,
                                )
                            )
                cur.execute(
                    "UPDATE log_head SET (position, chain) = "
                    "(SELECT position, chain FROM events ORDER BY position DESC LIMIT 1)"
                )
                cur.execute(
                    "INSERT INTO type_counts SELECT type, count(*) FROM events GROUP BY type"
                )
            copied = time.perf_counter() - started
            cur.execute("VACUUM ANALYZE events")
    finally:
        source.close()
    with PostgresStore(url, timeout=120) as store:
        report = store.verify()
    if not report.ok or report.head != head:
        raise AssertionError(f"the copied log does not verify with the SQLite head: {report}")
    return name, {
        "events": report.events,
        "copy_seconds": round(copied, 1),
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def bare_loop(url: str) -> dict:
    import psycopg

    loads = json.loads
    events = 0
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor("bare", binary=True) as cur:
            cur.itersize = 5000
            cur.execute("SELECT position, type, body FROM events ORDER BY position")
            while rows := cur.fetchmany(5000):
                for _position, _type, body in rows:
                    loads(body)
                    events += 1
        seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "memory": memory()}


def rebuild(url: str, views: str) -> dict:
    from projections import ProjectionRunner, open_projections
    from store import open_store

    for suffix in ("", "-wal", "-shm"):
        Path(f"{views}{suffix}").unlink(missing_ok=True)
    store = open_store(url, timeout=60)
    db = open_projections(store, views)
    try:
        started = time.perf_counter()
        applied = ProjectionRunner(db).rebuild("timeline")
        seconds = time.perf_counter() - started
        events = store.last_position()
    finally:
        db.close()
        store.close()
    return {"events": events, "applied": applied, "seconds": seconds, "memory": memory()}


def child(*args: str) -> dict:
    done = harness.run_with_rss([sys.executable, "-m", "bench.pg_rebuild", *args], timeout=1800)
    result = json.loads(done.out.decode().strip().splitlines()[-1])
    result.update(
        {
            "rss_bytes": max(done.peak_rss, result["memory"].get("VmHWM", 0)),
            "rate": result["events"] / result["seconds"],
        }
    )
    return result


def run(plan, cluster, log: Path, log_info: dict) -> list[Figure]:
    name, filled = fill(cluster, log)
    print(
        f"  pg rebuild: {filled['events']:,} events copied in {filled['copy_seconds']} s "
        f"(fill and verify {filled['fill_seconds']} s)",
        flush=True,
    )
    url = cluster.url(name)
    views = str(harness.WORK / "pg_rebuild.projections.db")
    bare, full, lite = [], [], []
    try:
        for i in range(plan.runs):
            bare.append(child("bare", url))
            full.append(child("rebuild", url, views))
            lite.append(sqlite_child("rebuild", log))
            print(
                f"  pg rebuild run {i + 1}: bare {bare[-1]['rate']:.0f} ev/s "
                f"({bare[-1]['seconds']:.1f} s), rebuild {full[-1]['rate']:.0f} ev/s "
                f"({full[-1]['seconds']:.1f} s, peak RSS {full[-1]['rss_bytes'] / 2**20:.0f} MB), "
                f"same rebuild on SQLite {lite[-1]['rate']:.0f} ev/s",
                flush=True,
            )
    finally:
        cluster.drop_database(name)
    n = full[0]["events"]
    note = (
        f"the log of benchmark 3 ({n:,} events) copied into PostgreSQL by binary COPY in "
        f"{filled['copy_seconds']} s, verified with the SQLite head; rate = log events / s"
    )
    if n < 1_000_000:
        note += f"; the issue asks for 1,000,000 events: this run used {n:,}"
    return [
        Figure(
            "11 pg rebuild",
            f"timeline rebuild from PostgreSQL, {n:,} events",
            "events/s",
            spread([r["rate"] for r in full]),
            spread([r["rate"] for r in bare]),
            "bare loop: psycopg server-side cursor + json.loads of every body",
            "min_ratio",
            1.0,
            note,
            extra={"fill": filled, "log": {k: v for k, v in log_info.items() if k != "probes"}},
        ),
        Figure(
            "11 pg rebuild",
            f"rebuild from PostgreSQL vs from SQLite, {n:,} events",
            "events/s",
            spread([r["rate"] for r in full]),
            spread([r["rate"] for r in lite]),
            "benchmark 3's rebuild child over the SQLite log the events came from",
            "info",
            None,
            "what bounds the row above: near 1, the projection's own work (the same "
            "rebuild reading SQLite, itself measured against a bare loop in benchmark 3); "
            "well below 1, the PostgreSQL path (read_batches staged into a scratch SQLite "
            "table per chunk)",
        ),
        Figure(
            "11 pg rebuild",
            "rebuild from PostgreSQL: peak RSS",
            "MB",
            spread([r["rss_bytes"] / 2**20 for r in full]),
            spread([r["rss_bytes"] / 2**20 for r in bare]),
            "bare loop peak RSS",
            "info",
            None,
            "the child's own VmHWM",
            stat="max",
        ),
    ]


if __name__ == "__main__":
    kind = sys.argv[1]
    print(
        json.dumps(bare_loop(sys.argv[2]) if kind == "bare" else rebuild(sys.argv[2], sys.argv[3]))
    )
