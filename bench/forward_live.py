"""Benchmarks 14 and 15: forwarding while `ikledger serve` ingests.

14, ingest with one active destination: the ingest benchmark's harness (a fresh log,
a short warm-up, then a fixed-duration wrk run of signed deliveries at 16 connections
against `serve` at its default settings), once with no destination and once with one
active destination (every event, `--from start`) pointing at the bare Falcon+waitress
endpoint, alternating (without, with, without, with, …). Figure: 2xx/s with the
destination; baseline: 2xx/s without it. Target: >= 0.85x (forwarding must not starve
the writer).

15, end to end at half load: wrk sends signed deliveries at about half the maximum
measured by 14's runs without a destination (16 paced connections) to `serve` with one
destination, an app in this process (Falcon under waitress) that notes when each event
arrives. A probe thread posts one event at a time and waits for the app to receive it:
latency = the app's receipt minus the probe's own 2xx. Target: p99 <= 250 ms. The
baseline is the probe's POST round trip (median), the resolution of the measurement.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

from . import harness, servers
from .events import distinct_deliveries
from .harness import Figure, percentile, spread
from .load import SECRET, sign, write_posts, wrk

GIVE_UP_S = 5.0  # a probe not received by then counts as infinitely late
PROBE_GAP_S = 0.05  # between a probe's receipt and the next probe


def _fresh_log(db: Path, url: str | None) -> None:
    """An empty log at `db`, with one destination to `url` when given."""
    import forwarding
    from store import open_store

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
        Path(f"{str(db).removesuffix('.db')}.projections.db{suffix}").unlink(missing_ok=True)
    store = open_store(str(db))
    try:
        if url is not None:
            forwarding.add_destination(store, "app", url, start="start", retry_schedule="1s")
    finally:
        store.close()


def _ok_rps(result: dict) -> float:
    return (result["requests"] - result["non2xx"]) / (result["duration_us"] / 1e6)


def ingest(plan, folder: Path, bare_url: str) -> tuple[list[float], list[float]]:
    """2xx/s of `plan.runs` ingest runs without, then with, a destination, alternating."""
    measured = distinct_deliveries(plan.ingest_requests, seed=141)
    warm = distinct_deliveries(plan.ingest_warmup_requests, seed=142)
    rates: dict[str, list[float]] = {"without": [], "with": []}
    for i in range(plan.runs):
        for name in ("without", "with"):
            now = int(time.time())
            req_file, warm_file = folder / f"{name}-{i}.req", folder / f"{name}-{i}.warm"
            write_posts(req_file, measured, now)
            write_posts(warm_file, warm, now)
            db = folder / f"ingest-{name}-{i}.db"
            _fresh_log(db, bare_url if name == "with" else None)
            with servers.ikledger(db, threads=None, log=folder / f"ingest-{name}-{i}.log") as port:
                if plan.warmup_seconds:
                    wrk(port, warm_file, mode="post", connections=plan.connections,
                        seconds=plan.warmup_seconds)
                result = wrk(port, req_file, mode="post", connections=plan.connections,
                             seconds=plan.ingest_seconds)
            rates[name].append(_ok_rps(result))
            print(f"  ingest {name} a destination, run {i + 1}: {rates[name][-1]:.0f} 2xx/s, "
                  f"non-2xx {result['non2xx']}", flush=True)
    return rates["with"], rates["without"]


class Receipts:
    """The app forwarded to: answers 200 and notes when each probe event arrives."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.received = 0

    def on_post(self, req, resp) -> None:
        document = json.loads(req.bounded_stream.read())
        event_id = document.get("id", "")
        with self.cond:
            self.received += 1
            if event_id.startswith(self.prefix):
                self.arrived.setdefault(event_id, time.perf_counter())
                self.cond.notify_all()
        resp.media = {"ok": True}

    def wait(self, event_id: str, limit: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: event_id in self.arrived, timeout=limit)
            return self.arrived.get(event_id)


def _app_server(receipts: Receipts):
    import logging

    import falcon
    import waitress

    # Bursts of forwarded events queue briefly in the app; that is measured, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = falcon.App()
    app.add_route("/webhook", receipts)
    server = waitress.create_server(app, host=harness.HOST, port=0, threads=8)
    thread = threading.Thread(target=server.run, name="bench-app", daemon=True)
    thread.start()
    return server, thread


def _probe(port: int, run: int, receipts: Receipts, stop: threading.Event, out: list, posts: list):
    import http.client
    import random

    from .events import _dumps, video_document

    rng = random.Random(run)
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
    try:
        k = 0
        while not stop.is_set() and k < 1000:
            event_id = f"{receipts.prefix}{run}-{k}"
            url = f"https://ik.imagekit.io/bench/forward/run{run}-{k}.mp4"  # its own asset
            created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            doc = video_document("accepted", event_id, created, url, 0, 50, event_id, rng)
            body = _dumps(doc).encode()
            ts, msg = int(time.time()), f"msg_{event_id}"
            headers = {"Content-Type": "application/json", "webhook-id": msg,
                       "webhook-timestamp": str(ts), "webhook-signature": sign(SECRET, msg, ts, body)}
            sent = time.perf_counter()
            conn.request("POST", "/webhook", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            acked = time.perf_counter()
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"probe POST answered {resp.status}")
            posts.append(acked - sent)
            arrived = receipts.wait(event_id, GIVE_UP_S)
            out.append(arrived - acked if arrived is not None else float("inf"))
            k += 1
            stop.wait(PROBE_GAP_S)
    finally:
        conn.close()


def end_to_end(plan, folder: Path, max_rps: float) -> tuple[list[float], list[float], dict]:
    """p99 (ms) of 2xx → the app's receipt per run, the probes' POST medians, details."""
    target = max_rps / 2
    count = int(target * plan.fresh_seconds * 1.5) + 1000
    deliveries = distinct_deliveries(count, seed=151)
    p99s, posts_med, details = [], [], {"load_rps": [], "probes": [], "received": []}
    for i in range(plan.runs):
        receipts = Receipts("fwdprobe-")
        app, app_thread = _app_server(receipts)
        try:
            url = f"http://{harness.HOST}:{app.effective_port}/webhook"
            db = folder / f"e2e-{i}.db"
            _fresh_log(db, url)
            req = folder / f"e2e-{i}.req"
            write_posts(req, deliveries, int(time.time()))
            with servers.ikledger(db, threads=None, log=folder / f"e2e-{i}.log") as port:
                pause = max(0, round(plan.connections * 1000 / target - 2))
                late, posts, stop, result = [], [], threading.Event(), {}

                def load(port=port, req=req, pause=pause, result=result):
                    result.update(wrk(port, req, mode="post", connections=plan.connections,
                                      seconds=plan.fresh_seconds, pause_ms=pause))

                loader = threading.Thread(target=load, daemon=True)
                probe = threading.Thread(
                    target=_probe, args=(port, i, receipts, stop, late, posts), daemon=True
                )
                loader.start()
                time.sleep(0.5)
                probe.start()
                loader.join(plan.fresh_seconds + 60)
                stop.set()
                probe.join(GIVE_UP_S + 10)
        finally:
            app.close()
            app_thread.join(5)
        if not late:
            raise RuntimeError("no probe came back")
        p99s.append(percentile(late, 99) * 1000)
        posts_med.append(statistics.median(posts) * 1000)
        details["load_rps"].append(result.get("rps", 0.0))
        details["probes"].append(len(late))
        details["received"].append(receipts.received)
        print(f"  end to end run {i + 1}: p99 {p99s[-1]:.0f} ms over {len(late)} probes, "
              f"median {statistics.median(late) * 1000:.0f} ms, load {details['load_rps'][-1]:.0f} "
              f"req/s (target {target:.0f}), non-2xx {result.get('non2xx')}", flush=True)
    return p99s, posts_med, details


def run(plan) -> list[Figure]:
    folder = harness.WORK / "forward-live"
    folder.mkdir(parents=True, exist_ok=True)
    with servers.bare(threads=plan.server_threads, log=folder / "bare.log") as bare_port:
        bare_url = f"http://{harness.HOST}:{bare_port}/webhook"
        with_dest, without = ingest(plan, folder, bare_url)
    max_rps = statistics.median(without)
    p99s, posts, details = end_to_end(plan, folder, max_rps)
    return [
        Figure("14 forward ingest", "ingest with one active destination", "2xx/s",
               spread(with_dest), spread(without), "the same runs with no destination",
               "min_ratio", 0.85,
               f"`serve` at its defaults, wrk {plan.connections} connections, "
               f"{plan.ingest_seconds} s per run; the destination is the bare endpoint"),
        Figure("15 forward latency", "2xx → the app's receipt, p99, at half load", "ms",
               spread(p99s), spread(posts), "the probe's POST round trip (median)",
               "max_value", 250.0,
               f"load {statistics.median(details['load_rps']):.0f} req/s (target 50% of "
               f"{max_rps:.0f}, 14's maximum without a destination); "
               f"{min(details['probes'])}–{max(details['probes'])} probes per run",
               extra=details),
    ]
