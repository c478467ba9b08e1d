"""Durable appends on PostgreSQL, 8 threads: ikledger versus eventsourcing's recorder.

ikledger's `PostgresStore.append` (group commit: one `ikledger_append` call per group)
versus the `eventsourcing` library's `PostgresApplicationRecorder.insert_events` with one
event per call (its own table lock for gap-free notification ids), both on a fresh
database of the same server with fsync and synchronous_commit on (checked before the
run). Runs alternate ikledger, peer, ikledger, peer, …

    .venv/bin/python -m bench.pg_append [--events 20000] [--runs 3]

Uses IKLEDGER_BENCH_POSTGRES_DSN when set (a superuser DSN; databases are created on
it), else a throwaway cluster (tests/postgres_cluster.py). `python -m bench.run --only pg`
runs it as benchmark 7 (bench/pg_suite.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import uuid
from contextlib import contextmanager

from psycopg.conninfo import conninfo_to_dict

from .append import THREADS, _events, _hammer


@contextmanager
def server():
    """A PostgreSQL server to measure on: the given DSN, or a throwaway cluster."""
    from tests.postgres_cluster import ExternalServer, LocalCluster, find_binaries

    dsn = os.environ.get("IKLEDGER_BENCH_POSTGRES_DSN")
    if dsn:
        cluster = ExternalServer(dsn)
    else:
        bindir = find_binaries()
        if bindir is None:
            raise SystemExit("PostgreSQL server not found: apt-get install postgresql")
        cluster = LocalCluster(bindir)
    try:
        yield cluster
    finally:
        cluster.close()


def check_durable(cluster, dbname: str) -> None:
    with cluster.admin(dbname) as conn:
        settings = conn.execute(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
        ).fetchone()
    if settings != ("on", "on"):
        raise RuntimeError(f"the server is not durable: fsync, synchronous_commit = {settings}")


def run_ikledger(cluster, events: list, threads: int) -> float:
    from store import NewEvent
    from store.postgres import PostgresStore

    name = cluster.create_database()
    check_durable(cluster, name)
    items = [NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks") for d in events]
    store = PostgresStore(cluster.url(name), timeout=30)
    try:
        elapsed = _hammer(store.append, items, threads)
        assert store.last_position() == len(items), "ikledger did not store every event"
        assert store.verify().ok
    finally:
        store.close()
        cluster.drop_database(name)
    return len(items) / elapsed


def run_peer(cluster, events: list, threads: int) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    name = cluster.create_database()
    check_durable(cluster, name)
    parts = conninfo_to_dict(cluster.dsn(name))
    datastore = PostgresDatastore(
        name,
        parts["host"],
        parts["port"],
        parts["user"],
        parts["password"],
        pool_size=threads,
        max_overflow=threads,
        lock_timeout=30,
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    items = [[StoredEvent(uuid.uuid5(uuid.NAMESPACE_URL, d.id), 1, d.type, d.body)] for d in events]
    try:
        elapsed = _hammer(recorder.insert_events, items, threads)
        assert recorder.max_notification_id() == len(items), "the peer did not store every event"
    finally:
        datastore.close()
        cluster.drop_database(name)
    return len(items) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = _events(args.events)
    ours, peer = [], []
    with server() as cluster:
        for run in range(args.runs):
            ours.append(run_ikledger(cluster, events, THREADS))
            peer.append(run_peer(cluster, events, THREADS))
            print(
                f"run {run + 1}: ikledger {ours[-1]:.0f} ev/s, eventsourcing {peer[-1]:.0f} ev/s",
                flush=True,
            )
    ratio = statistics.median(ours) / statistics.median(peer)
    print(
        json.dumps(
            {
                "events": args.events,
                "threads": THREADS,
                "ikledger_events_per_s": ours,
                "eventsourcing_events_per_s": peer,
                "ratio_of_medians": round(ratio, 2),
                "target": 3.0,
            }
        )
    )


if __name__ == "__main__":
    main()
