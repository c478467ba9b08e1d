"""Benchmark 13: forwarding a backlog to a bare endpoint, against a bare loop POSTing it.

A log of `forward_events` events (the generator's mix, ~50 events per asset) is
forwarded to the bare Falcon+waitress app (`bench/bare_app.py`, `POST /webhook` reads,
parses and answers 200) by `forwarding.run` in this process: a fresh destination per
run with `--from start`, order per asset kept (the default), 8 in flight, signed with
an ImageKit-style secret; the figure is events/s from the start until every delivery
is recorded `delivered`. The baseline, interleaved with it, POSTs the same bodies to
the same endpoint through the same client (`forwarding.HttpClient`) from 8 threads,
with nothing else: no signing, no ordering, no journal. Target: >= 0.8x.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import harness, servers
from .events import distinct_deliveries
from .harness import Figure, spread
from .load import SECRET

IN_FLIGHT = 8
BARE_THREADS = 8
LIMIT_S = 600.0  # a run that takes longer is a failure, not a figure


def _log(path: Path, count: int):
    """A fresh log of `count` distinct events; returns the open store and the bodies."""
    from store import NewEvent, open_store

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    events = distinct_deliveries(count, seed=13)
    store = open_store(str(path))
    for i in range(0, len(events), 2000):
        store.append_many(
            [
                NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks")
                for d in events[i : i + 2000]
            ]
        )
    return store, [d.body for d in events]


def run_forwarding(store, url: str, name: str, count: int) -> float:
    """Events/s of forwarding the whole log to `url` through a new destination `name`."""
    import forwarding

    forwarding.add_destination(
        store, name, url, start="start", max_in_flight=IN_FLIGHT, retry_schedule="1s"
    )
    stop = threading.Event()
    settings = forwarding.Settings(imagekit_secrets=(SECRET,), drain=5)
    state = store.forwarding()
    started = time.perf_counter()
    loop = threading.Thread(
        target=forwarding.run, args=(store, stop), kwargs={"settings": settings}, daemon=True
    )
    loop.start()
    try:
        while state.counts(name)["delivered"] < count:
            if time.perf_counter() - started > LIMIT_S:
                raise RuntimeError(f"forwarding {count} events took over {LIMIT_S:.0f} s")
            if state.counts(name)["failed"]:
                raise RuntimeError("some deliveries failed against the bare endpoint")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        loop.join(30)
        forwarding.remove(store, name)
    return count / elapsed


def run_bare_loop(url: str, bodies: list[bytes]) -> float:
    """Events/s of POSTing `bodies` from IN_FLIGHT threads through forwarding's client."""
    from forwarding import HttpClient

    client = HttpClient(maxsize=IN_FLIGHT)
    headers = {"Content-Type": "application/json"}

    def send(body: bytes) -> None:
        answer = client.post(url, body, headers, 30.0)
        if answer.status != 200:
            raise RuntimeError(f"the bare endpoint answered {answer.status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        for _ in pool.map(send, bodies):
            pass
    elapsed = time.perf_counter() - started
    client.close()
    return len(bodies) / elapsed


def run(plan) -> list[Figure]:
    folder = harness.WORK / "forward"
    folder.mkdir(parents=True, exist_ok=True)
    count = plan.forward_events
    store, bodies = _log(folder / "log.db", count)
    ours, bare = [], []
    try:
        with servers.bare(threads=BARE_THREADS, log=folder / "bare.log") as port:
            url = f"http://{harness.HOST}:{port}/webhook"
            for i in range(plan.runs):
                bare.append(run_bare_loop(url, bodies))
                ours.append(run_forwarding(store, url, f"bench-{i}", count))
                print(
                    f"  forward run {i + 1}: ikledger {ours[-1]:.0f} ev/s, "
                    f"bare loop {bare[-1]:.0f} ev/s",
                    flush=True,
                )
    finally:
        store.close()
    return [
        Figure(
            "13 forward",
            "forwarding a backlog to a bare endpoint",
            "events/s",
            spread(ours),
            spread(bare),
            "a bare loop POSTing the same bodies (same client, 8 threads)",
            "min_ratio",
            0.8,
            f"{count:,} events, order per asset, {IN_FLIGHT} in flight, signed, "
            "every attempt journalled; bare Falcon+waitress endpoint, 8 threads",
        )
    ]
