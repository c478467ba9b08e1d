"""Benchmark 5: time from a 2xx to the event showing in `GET /timeline`, under half load.

wrk sends signed deliveries at about half the ingest maximum measured in the same
harness run (16 paced connections), while a probe thread posts one event at a time
for an asset never seen before and polls `GET /timeline` for it every 5 ms until it
answers 200. Freshness = first 200 minus the probe's own 2xx. The baseline is one
poll's round trip at the same moment (the resolution of the measurement).
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import threading
import time
from pathlib import Path

from . import harness, servers
from .events import _dumps, distinct_deliveries, video_document
from .harness import Figure, percentile, spread
from .load import SECRET, sign, write_posts, wrk
from .query import path_for

POLL_S = 0.005
GIVE_UP_S = 5.0


def _probe_loop(port: int, run: int, stop: threading.Event, out: list, polls: list) -> None:
    import random

    rng = random.Random(run)
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
    k = 0
    try:
        while not stop.is_set() and k < 500:
            url = f"https://ik.imagekit.io/bench/fresh/run{run}-{k}.mp4"
            event_id = f"fresh-{run}-{k}-{rng.getrandbits(64):016x}"
            doc = video_document("accepted", event_id, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                                 url, 0, 50, event_id, rng)
            body = _dumps(doc).encode()
            ts = int(time.time())
            msg = f"msg_{event_id}"
            conn.request("POST", "/webhook", body=body, headers={
                "Content-Type": "application/json", "webhook-id": msg, "webhook-timestamp": str(ts),
                "webhook-signature": sign(SECRET, msg, ts, body)})
            resp = conn.getresponse()
            resp.read()
            acked = time.perf_counter()
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"probe POST answered {resp.status}")
            path = path_for(url)
            while True:
                t = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                now = time.perf_counter()
                polls.append(now - t)
                if resp.status == 200:
                    out.append(now - acked)
                    break
                if now - acked > GIVE_UP_S:
                    out.append(float("inf"))
                    break
                time.sleep(POLL_S)
            k += 1
            stop.wait(0.1)
    finally:
        conn.close()


def run(plan, small_log: Path, probes: dict, max_rps: float) -> list[Figure]:
    folder = harness.WORK / "freshness"
    folder.mkdir(parents=True, exist_ok=True)
    target = max_rps / 2
    count = int(target * plan.fresh_seconds * 1.5) + 1000
    deliveries = distinct_deliveries(count, seed=51)
    p99s, polls_med, rates, counts = [], [], [], []
    for i in range(plan.runs):
        db = folder / f"fresh-{i}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
            Path(f"{str(db).removesuffix('.db')}.projections.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(small_log, db)
        proj = Path(str(small_log).removesuffix(".db") + ".projections.db")
        if proj.exists():
            shutil.copyfile(proj, str(db).removesuffix(".db") + ".projections.db")
        req = folder / f"load-{i}.req"
        write_posts(req, deliveries, int(time.time()))
        with servers.ikledger(db, threads=None, log=folder / f"fresh-{i}.log") as port:
            status, _ = harness.http_get(port, path_for(probes[min(probes)]))
            if status != 200:
                raise RuntimeError(f"GET /timeline answers {status} for a known asset; not served yet?")
            # per-connection pause so that 16 connections together send about `target` req/s
            pause = max(0, round(plan.connections * 1000 / target - 2))
            fresh, polls, stop = [], [], threading.Event()
            probe = threading.Thread(target=_probe_loop, args=(port, i, stop, fresh, polls), daemon=True)
            result = {}

            def load():
                result.update(wrk(port, req, mode="post", connections=plan.connections,
                                  seconds=plan.fresh_seconds, pause_ms=pause))

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            time.sleep(0.5)
            probe.start()
            loader.join(plan.fresh_seconds + 60)
            stop.set()
            probe.join(GIVE_UP_S + 10)
        p99s.append(percentile(fresh, 99) * 1000)
        polls_med.append(statistics.median(polls) * 1000 if polls else 0.0)
        rates.append(result.get("rps", 0.0))
        counts.append(len(fresh))
        print(f"  freshness run {i + 1}: p99 {p99s[-1]:.0f} ms over {len(fresh)} probes, "
              f"median {statistics.median(fresh) * 1000:.0f} ms, load {rates[-1]:.0f} req/s "
              f"(target {target:.0f}), non-2xx {result.get('non2xx')}", flush=True)
    return [
        Figure("5 freshness", "2xx → visible in GET /timeline, p99", "ms",
               spread(p99s), spread(polls_med), "one poll round trip (median)", "max_value", 1000.0,
               f"load {statistics.median(rates):.0f} req/s (target 50% of {max_rps:.0f}); "
               f"{min(counts)}–{max(counts)} probes per run, polled every {POLL_S * 1000:.0f} ms",
               extra={"load_rps": rates, "probes": counts}),
    ]
