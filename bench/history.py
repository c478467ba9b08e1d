"""Benchmark 19: the verifiable history (`python -m bench.run --only history`).

Six figures over the Merkle tree, its proofs and retention (issue 19):

- ingest with the tree: `ikledger serve` from this tree against the same server from
  a copy of this tree whose group commit does not grow the tree (bench/work/history/,
  the one block of `store/sqlite/commit.py` that writes `tree_hashes` taken out; the
  product has no switch for it: a log without its tree would not verify), interleaved
  run by run as `bench/ab.py` does; and, as information, against the commit just
  before the tree (`git archive` of NOTREE_COMMIT), which also lacks every read model
  and feature added since;
- storage: file bytes per event of the generated big log (tree included), against its
  raw body bytes per event, with the tree's own bytes per event beside it;
- `prove` of random events in process (`store.tlog.proofs.event_proof` against a
  signed checkpoint kept first), p99;
- `GET /events/{id}/proof` of random events from `ikledger serve` at its defaults, wrk
  at 8 connections, p99 (and, as info, through the app in process by 8 reader threads:
  one interpreter, so the threads queue for the GIL);
- `store.verify()` (chain and tree) of the whole log, against a bare loop that reads
  every body with a plain sqlite3 cursor and SHA-256s it;
- prune of the older half of a copy of the big log by `ikledger prune` (a child
  process): its seconds, while 4 threads of this process append events one per call
  (each durable before it returns) and record the slowest answer.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from . import harness
from .harness import Figure, percentile, spread

# The commit just before "store: RFC 6962 Merkle tree, signed notes and checkpoints".
NOTREE_COMMIT = "79703a9"
SAMPLES = 1000  # random events proved, in process and through the app


def run(plan) -> list[Figure]:
    from .events import cached_log

    folder = harness.WORK / "history"
    folder.mkdir(parents=True, exist_ok=True)
    figures = ingest_ab(plan, folder)
    big, info = cached_log(plan.big_events)
    figures += storage(big, info)
    figures += proofs(plan, big, info["events"])
    figures += verify(plan, big, info["events"])
    figures += prune(big, info["events"], folder)
    return figures


# -- ingest, A/B against the build without the tree ------------------------------------


def notree_tree(folder: Path) -> Path:
    """The source tree of NOTREE_COMMIT, extracted once under `folder`."""
    tree = folder / f"notree-{NOTREE_COMMIT}"
    if (tree / "receiver" / "__main__.py").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = folder / "notree.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "archive", NOTREE_COMMIT], cwd=harness.ROOT, stdout=out,
                       check=True, timeout=120)  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


# What `same_without_tree` takes out of its copy of store/sqlite/commit.py: the tree's
# frontier read and its `tree_hashes` rows, nothing else of the group commit.
_TREE_BLOCK = re.compile(
    r"\n( +)frontier = self\._frontier\n.*?grow\(frontier, .*?\n +\)\n", re.DOTALL
)


def same_without_tree(folder: Path) -> Path:
    """A copy of this checkout's tracked files whose group commit grows no tree."""
    tree = folder / "same-without-tree"
    shutil.rmtree(tree, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=harness.ROOT, capture_output=True,
                           check=True, timeout=60).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = harness.ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    commit = tree / "store" / "sqlite" / "commit.py"
    text, found = _TREE_BLOCK.subn(r"\n\1frontier = None  # bench: no tree\n", commit.read_text())
    if found != 1:
        raise RuntimeError(f"bench/history.py: the tree's block in {commit} not found once ({found})")
    commit.write_text(text)
    return tree


def ingest_ab(plan, folder: Path) -> list[Figure]:
    from .ab import serve
    from .ingest import _requests, measured_run, settle
    from .load import write_posts, wrk

    variants = [
        ("tree", str(harness.ROOT)),
        ("notree", str(same_without_tree(folder))),
        ("before", str(notree_tree(folder))),
    ]
    measured = _requests(plan.ingest_requests, seed=41)
    warm = _requests(plan.ingest_warmup_requests, seed=42)
    out: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for i in range(plan.runs):
        for name, tree in variants:
            now = int(time.time())
            req, warm_file = folder / f"{name}.req", folder / f"{name}.warm"
            write_posts(req, measured, now)
            write_posts(warm_file, warm, now)
            db = folder / f"ingest-{name}.db"
            for stale in folder.glob(f"ingest-{name}.*"):
                stale.unlink()
            with serve(tree, {}, db, None, folder / f"ingest-{name}.log") as port:
                if plan.warmup_seconds:
                    wrk(port, warm_file, mode="post", connections=plan.connections,
                        seconds=plan.warmup_seconds)  # fmt: skip
                    settle(port)
                result = measured_run(port, req, plan)
            out[name].append(result)
            print(f"  history ingest {name} run {i + 1}: {result['rps']:.0f} req/s, "
                  f"p99 {result['p99_us'] / 1000:.1f} ms, non-2xx {result['non2xx']}",
                  flush=True)  # fmt: skip
    tree, notree, before = out["tree"], out["notree"], out["before"]
    bad = sum(r["non2xx"] + r["errors"] for r in tree + notree + before)
    return [
        Figure("19 history", "ingest req/s with the tree", "req/s",
               spread([r["rps"] for r in tree]), spread([r["rps"] for r in notree]),
               "the same serve from a copy of this tree whose group commit grows no tree",
               "min_ratio", 0.95,
               f"`python -m receiver serve` at its defaults from each source tree, "
               f"{plan.connections} wrk connections, {plan.ingest_seconds} s per run, "
               f"interleaved; non-2xx+errors in all runs {bad}",
               extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(tree, notree)]}),
        Figure("19 history", "ingest req/s with the tree vs the commit before it", "req/s",
               spread([r["rps"] for r in tree]), spread([r["rps"] for r in before]),
               f"the same serve built from {NOTREE_COMMIT} (the commit before the tree)",
               "info", None,
               "the commit before the tree also lacks the read models and features added "
               "since (event_types, search, forwarding, retention); interleaved with the "
               "row above",
               extra={"pairwise_ratios": [a["rps"] / b["rps"] for a, b in zip(tree, before)]}),
    ]  # fmt: skip


# -- storage ----------------------------------------------------------------------------


def storage(path: Path, info: dict) -> list[Figure]:
    from .storage import breakdown, log_bytes

    events = info["events"]
    size, file_bytes = log_bytes(path)  # pages in use: a migrated log's freed ones are reused
    parts = breakdown(path)
    tree = sum(v for k, v in parts.items() if k.startswith("tree_"))
    return [
        Figure("19 history", f"log bytes per event with the tree at {events:,} events",
               "B/event", spread([size / events]), spread([info["body_bytes"] / events]),
               "raw body bytes per event", "max_ratio", 1.5,
               f"one measurement of a deterministic log, its pages in use "
               f"({file_bytes - size:,} B of the file on the free list); the tree's tables "
               f"and indexes {tree / events:.1f} B/event (dbstat)",
               extra={"file_bytes": file_bytes, "bytes_in_use": size, "tree_bytes": tree}),
    ]  # fmt: skip


# -- proofs -----------------------------------------------------------------------------


def _signed_checkpoint(store) -> bytes:
    """A signed checkpoint of the whole log, kept in it (as `serve` keeps them)."""
    from receiver.checkpoints import fresh_checkpoint
    from store.tlog.note import generate_key, parse_signer

    private, _ = generate_key("bench.ikledger")
    note = fresh_checkpoint(store, parse_signer(private))
    store.add_checkpoint(note)
    return note


def _sample_ids(store, events: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    positions = [rng.randint(1, events) for _ in range(count)]
    by_position = {e.position: e.id for e in store.get_positions(sorted(set(positions)))}
    return [by_position[p] for p in positions]


def proofs(plan, path: Path, events: int) -> list[Figure]:
    import falcon.testing

    import projections
    from receiver.config import Config
    from receiver.http.app import create_app
    from store import open_store
    from store.tlog.proofs import event_proof

    store = open_store(str(path))
    views_path = harness.WORK / "history" / "proof-views.db"
    views_path.unlink(missing_ok=True)
    views = projections.open_projections(store, str(views_path))  # the route reads none
    try:
        note = _signed_checkpoint(store)
        in_process, served = [], []
        client = falcon.testing.TestClient(create_app(Config(secrets=("s",)), store, views))
        for run in range(plan.runs):
            ids = _sample_ids(store, events, SAMPLES, seed=19 + run)
            for event_id in ids[:20]:
                event_proof(store, event_id, note)  # warm the page cache and the code
            took = []
            for event_id in ids:
                began = time.perf_counter()
                event_proof(store, event_id, note)
                took.append((time.perf_counter() - began) * 1000)
            in_process.append(percentile(took, 99))
            served.append(percentile(_proof_route(client, ids), 99))
            print(
                f"  history proofs run {run + 1}: prove p99 {in_process[-1]:.2f} ms, "
                f"GET /events/{{id}}/proof p99 {served[-1]:.2f} ms (8 readers)",
                flush=True,
            )
        ids = _sample_ids(store, events, SAMPLES, seed=1900)
    finally:
        views.close()
        store.close()
        views_path.unlink(missing_ok=True)
    over_wrk, bad = _proof_route_served(plan, path, ids)
    return [
        Figure("19 history", "GET /events/{id}/proof p99, 8 readers", "ms",
               spread(over_wrk), None, None, "max_value", 10.0,
               f"`ikledger serve` at its defaults over the log, wrk 8 connections cycling "
               f"{SAMPLES} random events, {plan.query_seconds} s per run, against the kept "
               f"checkpoint; non-2xx+errors {bad}"),
        Figure("19 history", f"prove of a random event at {events:,} events, p99", "ms",
               spread(in_process), None, None, "max_value", 5.0,
               f"`event_proof` in process against a signed checkpoint of the whole log, "
               f"{SAMPLES} random events per run, one thread"),
        Figure("19 history", "GET /events/{id}/proof p99, 8 reader threads in process", "ms",
               spread(served), None, None, "info", None,
               f"through the real app in process (Falcon test client, no network), "
               f"{SAMPLES} random events shared by 8 reader threads, against the kept "
               f"checkpoint"),
    ]  # fmt: skip


def _proof_route_served(plan, path: Path, ids: list[str]) -> tuple[list[float], int]:
    """p99s (ms) of wrk runs of 8 connections over the proofs of `ids`, and the failures."""
    import projections

    from . import servers
    from .load import write_gets, wrk
    from .rebuild import child

    if not Path(projections.default_projections_path(path)).exists():
        child("rebuild", path)  # else serve's catch-up would run during the measurement
    folder = harness.WORK / "history"
    req = folder / "proof.req"
    write_gets(req, [f"/events/{event_id}/proof" for event_id in ids])
    p99s, bad = [], 0
    with servers.ikledger(path, threads=None, log=folder / "proof-serve.log") as port:
        for run in range(plan.runs):
            if plan.warmup_seconds:
                wrk(port, req, mode="get", connections=8, seconds=plan.warmup_seconds)
            got = wrk(port, req, mode="get", connections=8, seconds=plan.query_seconds)
            p99s.append(got["p99_us"] / 1000)
            bad += got["non2xx"] + got["errors"]
            print(f"  history proof route run {run + 1}: p99 {p99s[-1]:.2f} ms over wrk, "
                  f"{got['rps']:.0f} req/s", flush=True)  # fmt: skip
    return p99s, bad


def _proof_route(client, ids: list[str]) -> list[float]:
    took: list[float] = []
    lock = threading.Lock()

    def reader(mine: list[str]) -> None:
        local = []
        for event_id in mine:
            began = time.perf_counter()
            answer = client.simulate_get(f"/events/{event_id}/proof")
            local.append((time.perf_counter() - began) * 1000)
            assert answer.status_code == 200, (event_id, answer.status, answer.text[:200])
        with lock:
            took.extend(local)

    threads = [threading.Thread(target=reader, args=(ids[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return took


# -- verify -----------------------------------------------------------------------------


def _bare_hash_loop(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count = 0
        for (body,) in conn.execute("SELECT body FROM events ORDER BY position"):
            hashlib.sha256(body).digest()
            count += 1
        return count
    finally:
        conn.close()


def verify(plan, path: Path, events: int) -> list[Figure]:
    from store import open_store

    runs = 1 if events >= 500_000 else plan.runs  # each 1M pass is tens of seconds
    ours, bare = [], []
    for run in range(runs):
        began = time.perf_counter()
        read = _bare_hash_loop(path)
        bare.append(read / (time.perf_counter() - began))
        store = open_store(str(path))
        try:
            began = time.perf_counter()
            report = store.verify()
            ours.append(events / (time.perf_counter() - began))
        finally:
            store.close()
        if not report.ok:
            raise RuntimeError(f"verify failed on the benchmark log: {report}")
        print(f"  history verify run {run + 1}: {ours[-1]:,.0f} events/s, bare SHA-256 "
              f"loop {bare[-1]:,.0f} events/s", flush=True)  # fmt: skip
    return [
        Figure("19 history", f"verify (chain and tree) of {events:,} events", "events/s",
               spread(ours), spread(bare),
               "plain sqlite3 cursor reading every body and SHA-256ing it", "min_ratio", 0.8,
               f"`store.verify()` in process, {runs} run(s), bare loop first each run"),
    ]  # fmt: skip


# -- prune ------------------------------------------------------------------------------


PRUNE = """
import sys, time
from receiver.retention import prune
from store import open_store
store = open_store(sys.argv[1], timeout=30.0)
began = time.perf_counter()
removed = prune(store, sys.argv[2])
print(removed, time.perf_counter() - began)
store.close()
"""


def prune(path: Path, events: int, folder: Path) -> list[Figure]:
    """Prune the older half of a copy of the log while appends go on beside it.

    The prune runs in a child process (`receiver.retention.prune`, what `ikledger prune`
    calls before it rebuilds the read models) and times itself; 4 threads of this
    process append one event per call meanwhile, each durable before it returns, and
    keep the slowest answer, a refusal (`StoreUnavailable` after the store's 5 s busy
    timeout) included.
    """
    from store import NewEvent, StoreError, open_store

    from .events import distinct_deliveries

    copy = folder / "prune.db"
    for stale in folder.glob("prune.*"):
        stale.unlink()
    shutil.copyfile(path, copy)
    store = open_store(str(copy))
    stop = threading.Event()
    slowest, answers, refused = [0.0], [0], []
    lock = threading.Lock()
    try:
        before = store.get_positions([events // 2 + 1])[0].received_at
        pending = distinct_deliveries(20_000, seed=1919)

        def appender(mine) -> None:
            for d in mine:
                if stop.is_set():
                    return
                began = time.perf_counter()
                try:
                    store.append(NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks"))
                    failure = None
                except StoreError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                took = time.perf_counter() - began
                with lock:
                    slowest[0] = max(slowest[0], took)
                    answers[0] += 1
                    if failure:
                        refused.append(failure)

        threads = [threading.Thread(target=appender, args=(pending[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        done = subprocess.run(
            [sys.executable, "-c", PRUNE, str(copy), before],
            check=False, capture_output=True, text=True, cwd=harness.ROOT, timeout=1800,
        )  # fmt: skip
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        store.close()
    if done.returncode != 0:
        raise RuntimeError(f"the prune failed: {done.stderr[-1000:]}")
    pruned, seconds = done.stdout.split()
    pruned, seconds = int(pruned), float(seconds)
    for stale in folder.glob("prune.*"):
        stale.unlink()
    print(f"  history prune: {pruned:,} bodies in {seconds:.1f} s; {answers[0]:,} appends "
          f"meanwhile, slowest {slowest[0] * 1000:.0f} ms, refused {len(refused)}",
          flush=True)  # fmt: skip
    return [
        Figure("19 history", f"prune of {pruned:,} of {events:,} events", "s",
               spread([seconds]), None, None, "info", None,
               "`receiver.retention.prune` (what `ikledger prune` runs before rebuilding the "
               "read models) in a child process on a copy of the log; T is the received_at "
               "of the middle position"),
        Figure("19 history", "slowest append answer during the prune", "ms",
               spread([slowest[0] * 1000]), None, None, "max_value", 1000.0,
               f"4 threads appending one event per call (durable before it returns) through "
               f"the store while the prune ran: {answers[0]:,} answers, {len(refused)} "
               f"refused{': ' + refused[0] if refused else ''}",
               extra={"refused": refused[:20]}),
    ]  # fmt: skip
