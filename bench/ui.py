"""Server-side render time of the timeline page (`python -m bench.run --only ui`).

Builds a log with one asset of N transformations (accepted + ready, some errors and
one stuck), catches the read models up, then renders `GET /ui/asset?url=…` in process
through the real Falcon app (query + layout + templates, no network): R renders on one
thread, then R renders shared by 8 reader threads; once with the rendered-fragment
cache off (every render lays out and draws the picture), once with it on (the page as
served while the asset does not change). Prints p50/p99 in ms as JSON.

    .venv/bin/python -m bench.ui [--transformations 200] [--renders 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import falcon.testing

import projections
from receiver.http.app import create_app
from receiver.config import Config
from receiver.ui import fragments
from store import NewEvent, open_store

ASSET = "https://ik.imagekit.io/bench/video.mp4"


def _body(kind: str, event_id: str, request_id: str, created_at: str) -> bytes:
    data: dict = {"asset": {"url": ASSET}, "transformation": {"type": "video-transformation"}}
    if kind == "error":
        data["transformation"]["error"] = {"reason": "encoding_failed"}
    if kind == "ready":
        data["transformation"]["output"] = {"url": f"{ASSET}?tr=f-webm&r={request_id}"}
    return json.dumps(
        {
            "type": f"video.transformation.{kind}",
            "id": event_id,
            "created_at": created_at,
            "request": {"x_request_id": request_id, "url": ASSET},
            "data": data,
        }
    ).encode()


def fill(store, count: int) -> None:
    start = datetime(2024, 1, 2, tzinfo=UTC)
    events = []
    for i in range(count):
        rid = f"req-{i:04d}"
        accepted = start + timedelta(seconds=i * 7)
        terminal = "error" if i % 9 == 0 else "ready"
        for kind, moment in [("accepted", accepted), (terminal, accepted + timedelta(seconds=40))]:
            if i == count - 1 and kind != "accepted":
                continue  # the last one stays stuck
            at = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            eid = f"{rid}-{kind}"
            events.append(NewEvent(eid, f"video.transformation.{kind}", at,
                                   _body(kind, eid, rid, at), "standard-webhooks"))  # fmt: skip
    store.append_many(events)


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "renders": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformations", type=int, default=200)
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args()
    report: dict = {"transformations": args.transformations}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "log.db"))
        views = projections.open_projections(store, str(Path(tmp) / "views.db"))
        try:
            fill(store, args.transformations)
            projections.ProjectionRunner(views).catch_up()
            for name, entries in [("uncached", 0), ("cached", fragments.MAX_ENTRIES)]:
                saved, fragments.MAX_ENTRIES = fragments.MAX_ENTRIES, entries
                try:
                    app = create_app(Config(secrets=("s",)), store, views)
                finally:
                    fragments.MAX_ENTRIES = saved
                report[name] = measure(falcon.testing.TestClient(app), args.renders)
        finally:
            views.close()
            store.close()
    print(json.dumps(report, indent=2))


def run(plan) -> list:
    """The page's p99 from a real `ikledger serve` under 8 wrk readers, beside the JSON API's.

    One log holds one asset of 200 transformations; each run measures `GET /timeline`
    and `GET /ui/asset` of that asset on the same server, interleaved, `plan.runs` times.
    The page drawn afresh every time (its picture cache off) is measured in process,
    as an info row: what a page costs while its asset keeps changing.
    """
    from urllib.parse import quote

    from . import harness, servers
    from .harness import Figure, spread
    from .load import wrk

    folder = harness.WORK / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "ui.db"
    for stale in folder.glob("ui.*"):
        stale.unlink()
    store = open_store(str(log))
    views = projections.open_projections(store, projections.default_projections_path(log))
    try:
        fill(store, 200)
        projections.ProjectionRunner(views).catch_up()
        saved, fragments.MAX_ENTRIES = fragments.MAX_ENTRIES, 0
        try:
            app = create_app(Config(secrets=("s",)), store, views)
            uncached = falcon.testing.TestClient(app)
        finally:
            fragments.MAX_ENTRIES = saved
        renders = 200 if plan.query_seconds >= 5 else 40
        fresh = [measure(uncached, renders)["eight_readers"]["p99_ms"] for _ in range(plan.runs)]
    finally:
        views.close()
        store.close()
    files = {}
    for name, path in (("api", f"/timeline?asset={quote(ASSET, safe='')}"),
                       ("page", f"/ui/asset?url={quote(ASSET, safe='')}")):  # fmt: skip
        files[name] = folder / f"{name}.req"
        files[name].write_text((path + "\n") * 8)
    page, api, bad = [], [], 0
    with servers.ikledger(log, threads=None, log=folder / "serve.log") as port:
        size = len(harness.http_get(port, f"/ui/asset?url={quote(ASSET, safe='')}")[1])
        for i in range(plan.runs):
            for name, into in (("api", api), ("page", page)):
                if plan.warmup_seconds:
                    wrk(port, files[name], mode="get", connections=8, seconds=plan.warmup_seconds)
                got = wrk(port, files[name], mode="get", connections=8, seconds=plan.query_seconds)
                into.append(got["p99_us"] / 1000)
                bad += got["non2xx"] + got["errors"]
            print(f"  ui run {i + 1}: page p99 {page[-1]:.1f} ms, GET /timeline p99 {api[-1]:.1f} ms"
                  f" (page drawn afresh in process: {fresh[i]:.1f} ms)", flush=True)  # fmt: skip
    note = (f"`ikledger serve` at its defaults, wrk 8 connections; one asset of 200 transformations, "
            f"page {size / 1000:.0f} kB; non-2xx+errors {bad}")  # fmt: skip
    return [
        Figure("12 ui", "timeline page p99, 8 readers", "ms", spread(page), spread(api),
               "GET /timeline (JSON) of the same asset, same server, p99", "max_value", 50.0, note),
        Figure("12 ui", "timeline page drawn afresh each time, p99, 8 readers", "ms",
               spread(fresh), None, None, "info", None,
               f"in process through the real app, {renders} renders shared by 8 threads, the "
               "picture cache off: a page whose asset keeps changing"),
    ]  # fmt: skip


def measure(client, renders: int, path: str = "/ui/asset", params: dict | None = None) -> dict:
    params = {"url": ASSET} if params is None else params

    def render() -> float:
        began = time.perf_counter()
        answer = client.simulate_get(path, params=params)
        elapsed = (time.perf_counter() - began) * 1000
        assert answer.status_code == 200, answer.status
        return elapsed

    for _ in range(10):
        render()  # warm the caches and templates
    single = [render() for _ in range(renders)]
    shared: list[float] = []
    lock = threading.Lock()

    def reader(n: int) -> None:
        mine = [render() for _ in range(n)]
        with lock:
            shared.extend(mine)

    threads = [threading.Thread(target=reader, args=(renders // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return {
        "page_bytes": len(client.simulate_get(path, params=params).content),
        "one_reader": _percentiles(single),
        "eight_readers": _percentiles(shared),
    }


if __name__ == "__main__":
    main()
