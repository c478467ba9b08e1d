"""The PostgreSQL log's append capacity: events/s from 8 concurrent writers in groups.

Each writer is its own `PostgresStore` (as separate receivers are) and sends groups of
10 to 100 events (`append_many`, the size a loaded receiver's writer forms) back to
back, for a fixed count; durable settings are checked first. The figure is total
events over wall time, and the log must verify afterwards with positions 1..N.

    .venv/bin/python -m bench.pg_capacity [--events 40000] [--writers 8] [--runs 3]

Server: IKLEDGER_BENCH_POSTGRES_DSN or a throwaway cluster (see bench/pg_append.py).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time

from .events import distinct_deliveries
from .pg_append import check_durable, server


def _groups(events: list, seed: int) -> list[list]:
    """The events cut into groups of 10..100, sizes drawn from a seeded generator."""
    rng, groups, start = random.Random(seed), [], 0
    while start < len(events):
        size = rng.randint(10, 100)
        groups.append(events[start : start + size])
        start += size
    return groups


def run_once(cluster, events: list, writers: int) -> float:
    from store import NewEvent
    from store.postgres import PostgresStore

    name = cluster.create_database()
    check_durable(cluster, name)
    url = cluster.url(name)
    items = [NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks") for d in events]
    groups = _groups(items, seed=7)
    stores = [PostgresStore(url, timeout=30) for _ in range(writers)]
    errors: list[BaseException] = []
    gate = threading.Barrier(writers + 1)

    def work(store, mine) -> None:
        gate.wait()
        try:
            for group in mine:
                store.append_many(group)
        except BaseException as exc:  # noqa: BLE001 -- surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(store, groups[n::writers]), daemon=True)
        for n, store in enumerate(stores)
    ]
    try:
        for thread in threads:
            thread.start()
        gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join(timeout=600)
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        report = stores[0].verify()
        assert report.ok and report.events == len(items), report
    finally:
        for store in stores:
            store.close()
        cluster.drop_database(name)
    return len(items) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = distinct_deliveries(args.events, seed=33)
    rates = []
    with server() as cluster:
        for run in range(args.runs):
            rates.append(run_once(cluster, events, args.writers))
            print(f"run {run + 1}: {rates[-1]:.0f} events/s accepted", flush=True)
    print(
        json.dumps(
            {
                "events": args.events,
                "writers": args.writers,
                "group_sizes": "10-100",
                "events_per_s": rates,
                "median": round(statistics.median(rates)),
            }
        )
    )


if __name__ == "__main__":
    main()
