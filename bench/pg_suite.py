"""The PostgreSQL benchmarks of issue 9 (`python -m bench.run --only pg`), on one cluster.

The bench starts its own throwaway cluster (tests/postgres_cluster.py's `LocalCluster`:
initdb in a temporary folder, fsync and synchronous_commit on, a free loopback port, run
as `postgres` when root), or uses IKLEDGER_BENCH_POSTGRES_DSN (a superuser) when set;
every measurement gets a fresh database. Five figures, each a ratio within this run:

7. durable appends, 8 threads: ikledger versus eventsourcing's PostgreSQL recorder
   (bench/pg_append.py);
8. ingest through `ikledger serve` on PostgreSQL versus on SQLite, and (8b) CPU per
   acknowledged request, receiver + PostgreSQL server versus the SQLite receiver
   (bench/pg_ingest.py);
9. two receivers on one PostgreSQL versus one (bench/pg_ingest.py);
10. the log's append capacity from 8 writers in groups of 10-100 versus one receiver's
    ingest rate measured in 8 (bench/pg_capacity.py);
11. rebuild of the timeline from a PostgreSQL log versus a bare psycopg loop
    (bench/pg_rebuild.py).
"""

from __future__ import annotations

from .harness import Figure, spread


def appends(plan, cluster) -> list[Figure]:
    from .append import THREADS, _events
    from .pg_append import run_ikledger, run_peer

    events = _events(plan.append_events)
    ours, peer = [], []
    for i in range(plan.runs):
        ours.append(run_ikledger(cluster, events, THREADS))
        peer.append(run_peer(cluster, events, THREADS))
        print(
            f"  pg append run {i + 1}: ikledger {ours[-1]:.0f} ev/s, "
            f"eventsourcing {peer[-1]:.0f} ev/s",
            flush=True,
        )
    return [
        Figure(
            "7 pg append",
            f"durable appends on PostgreSQL, {THREADS} threads, {len(events):,} events",
            "events/s",
            spread(ours),
            spread(peer),
            "eventsourcing's PostgresApplicationRecorder.insert_events, one event per call",
            "min_ratio",
            3.0,
            "both on a fresh database of the same server, fsync and synchronous_commit on "
            "(checked); one event per call from every thread; ikledger's log verifies after",
        ),
    ]


def capacity(plan, cluster, receiver_rps: float | None) -> list[Figure]:
    from .events import distinct_deliveries
    from .pg_capacity import run_once

    events = distinct_deliveries(plan.pg_capacity_events, seed=33)
    rates = []
    for i in range(plan.runs):
        rates.append(run_once(cluster, events, 8))
        print(f"  pg capacity run {i + 1}: {rates[-1]:.0f} events/s accepted", flush=True)
    baseline = spread([receiver_rps]) if receiver_rps else None
    return [
        Figure(
            "10 pg capacity",
            "append capacity: 8 writers, groups of 10-100",
            "events/s",
            spread(rates),
            baseline,
            "one receiver's ingest rate on PostgreSQL (8, same run)",
            "min_ratio",
            10.0,
            f"{len(events):,} events per run, each writer its own PostgresStore sending "
            "append_many groups back to back; the log verifies with positions 1..N after "
            "every run" + ("" if receiver_rps else "; no baseline: run with benchmark 8"),
        ),
    ]


def run(plan) -> list[Figure]:
    from .events import cached_log
    from .pg_append import server
    from .pg_ingest import scale_out, versus_sqlite
    from .pg_rebuild import run as rebuild

    figures: list[Figure] = []
    errors: dict[str, str] = {}

    def attempt(name, fn):
        import traceback

        print(f"-- pg {name}", flush=True)
        try:
            return fn()
        except Exception as exc:  # one broken measurement must not hide the others
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"[:400]
            return None

    with server() as cluster:
        figures += attempt("append", lambda: appends(plan, cluster)) or []
        got = attempt("ingest", lambda: versus_sqlite(plan, cluster))
        receiver_rps = None
        if got:
            figures += got[0]
            receiver_rps = got[1]["postgres_rps"]
        figures += attempt("scale-out", lambda: scale_out(plan, cluster)) or []
        figures += attempt("capacity", lambda: capacity(plan, cluster, receiver_rps)) or []

        def rebuilt():
            log, info = cached_log(plan.pg_rebuild_events)
            return rebuild(plan, cluster, log, info)

        figures += attempt("rebuild", rebuilt) or []
    if errors:
        raise PartialRun(figures, errors)
    return figures


class PartialRun(Exception):
    """Some PostgreSQL benchmarks crashed: the figures of the others, and what broke."""

    def __init__(self, figures: list[Figure], errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.figures, self.errors = figures, errors
