"""Benchmark 2: the same events appended from 8 threads, each durable before its call returns.

ikledger's `SQLiteStore.append` (group commit) versus the `eventsourcing` library's
`SQLiteApplicationRecorder.insert_events` with one event per call, both on a fresh
file in WAL mode with `synchronous=FULL` (the peer's connections are checked to be at
FULL, SQLite's default, before the run). Each event becomes one stored event of the
peer: originator = a UUID derived from the event id, version 1, topic = event type,
state = the raw body. Runs alternate ikledger, peer, ikledger, peer, …
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from . import harness
from .events import distinct_deliveries
from .harness import Figure, spread

THREADS = 8


def _events(count: int) -> list:
    return distinct_deliveries(count, seed=21)


def _fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _hammer(work, calls: list, threads: int) -> float:
    """Run `work(item)` for every item from `threads` threads; returns wall seconds."""
    slices = [calls[i::threads] for i in range(threads)]
    errors: list[BaseException] = []
    gate = threading.Barrier(threads + 1)

    def worker(items):
        gate.wait()
        try:
            for item in items:
                work(item)
        except BaseException as exc:  # surfaced below; never let a thread die silently
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(s,), daemon=True) for s in slices]
    for t in pool:
        t.start()
    gate.wait()
    started = time.perf_counter()
    for t in pool:
        t.join(timeout=600)
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in pool):
        raise RuntimeError("append workers did not finish within 600 s")
    return elapsed


def run_ikledger(path: Path, events: list, threads: int) -> float:
    from store import NewEvent, SQLiteStore

    items = [NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks") for d in events]
    store = SQLiteStore(_fresh(path))
    try:
        elapsed = _hammer(store.append, items, threads)
        assert store.last_position() == len(items), "ikledger did not store every event"
    finally:
        store.close()
    return len(items) / elapsed


def run_peer(path: Path, events: list, threads: int) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(_fresh(path)), pool_size=threads, max_overflow=threads)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        level = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
    if level != 2 or mode.lower() != "wal":
        raise RuntimeError(f"peer is not at the same durability: synchronous={level}, {mode}")
    items = [
        [StoredEvent(uuid.uuid5(uuid.NAMESPACE_URL, d.id), 1, d.type, d.body)] for d in events
    ]
    try:
        elapsed = _hammer(recorder.insert_events, items, threads)
        assert recorder.max_notification_id() == len(items), "the peer did not store every event"
    finally:
        datastore.close()
    return len(items) / elapsed


def run(plan) -> list[Figure]:
    folder = harness.WORK / "append"
    folder.mkdir(parents=True, exist_ok=True)
    events = _events(plan.append_events)
    ours, peer = [], []
    for i in range(plan.runs):
        ours.append(run_ikledger(folder / "ikledger.db", events, THREADS))
        peer.append(run_peer(folder / "peer.db", events, THREADS))
        print(f"  append run {i + 1}: ikledger {ours[-1]:.0f} ev/s, eventsourcing {peer[-1]:.0f} ev/s",
              flush=True)
    return [
        Figure("2 append", "durable appends, 8 threads", "events/s", spread(ours), spread(peer),
               "eventsourcing SQLiteApplicationRecorder", "min_ratio", 3.0,
               f"{len(events):,} events, one per call, WAL + synchronous=FULL on both")
    ]
