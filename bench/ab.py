"""Same-run A/B measurements of candidate changes, interleaved run by run.

    python -m bench.ab ingest A=. B=/tmp/exp,IKX_CATCHUP=off --runs 3 --seconds 8
    python -m bench.ab query bare=bare same=same A=. B=/tmp/exp,IKX_SEND_BYTES=65536
    python -m bench.ab cli A=. B=/tmp/exp --runs 15

A variant is NAME=TREE[,KEY=VALUE...]: the server is `python -m receiver serve` run
from the source tree TREE (a patched copy of the repository; `.` is this one) with
the environment KEY=VALUE added, so candidate changes are measured without
committing them. `bare` is the bare Falcon app; in `query` mode, `same` is the bare
app sending the answers recorded from the first ikledger variant; `cli` mode times
`python -m receiver timeline URL --json` (200 transformations, the log's read models)
as a whole process from each tree, wall and CPU (the child's own rusage), against
`python -c pass`. Each round runs
every variant once, in order; figures are printed per run and as medians, and the
whole result is written as JSON to bench/work/ab/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

from . import harness, servers
from .harness import spread
from .load import SECRET, write_posts, wrk


def parse_variant(text: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition("=")
    tree, *pairs = rest.split(",")
    env = dict(pair.split("=", 1) for pair in pairs)
    return name, tree, env


@contextlib.contextmanager
def serve(tree: str, env: dict, db: Path, threads: int | None, log: Path):
    root = Path(tree).resolve()
    port = harness.free_port()
    extra = [] if threads is None else ["--threads", str(threads)]
    proc = harness.start(
        [sys.executable, "-m", "receiver", "serve", "--host", harness.HOST, "--port", str(port),
         "--db", str(db), *extra],
        env={"IMAGEKIT_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(root), **env},
        log=log, cwd=root,
    )
    servers._pids[port] = proc.pid
    try:
        harness.wait_ready(port, proc)
        yield port
    finally:
        servers._pids.pop(port, None)
        harness.stop(proc)


def server_for(tree: str, env: dict, db: Path, threads: int, log: Path, answers: Path | None = None):
    if tree == "bare":
        return servers.bare(threads=threads or 8, log=log)
    if tree == "same":
        return servers.bare(threads=threads or 8, log=log, answers=answers)
    return serve(tree, env, db, threads, log)


def ingest(args, variants, folder: Path) -> dict:
    from .ingest import _requests, measured_run, settle

    measured = _requests(args.requests, seed=41)
    warm = _requests(2_000, seed=42)
    plan = argparse.Namespace(connections=16, ingest_seconds=args.seconds)
    out = {name: [] for name, _, _ in variants}
    for i in range(args.runs):
        for name, tree, env in variants:
            now = int(time.time())
            req, warm_file = folder / f"{name}.req", folder / f"{name}.warm"
            write_posts(req, measured, now)
            write_posts(warm_file, warm, now)
            db = folder / f"{name}.db"
            read_models = db.with_suffix(".projections.db")  # the default beside the log
            for path in (db, read_models):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            if "IKX_GROUPLOG" in env:
                env = {**env, "IKX_GROUPLOG": str(folder / f"{name}-{i}.groups")}
            with server_for(tree, env, db, args.threads, folder / f"{name}.log") as port:
                wrk(port, warm_file, mode="post", connections=16, seconds=1)
                settle(port)
                result = measured_run(port, req, plan)
            groups = [json.loads(p.read_text()) for p in folder.glob(f"{name}-{i}.groups.*")]
            if groups:
                result["group_avg"] = sum(g["events"] for g in groups) / sum(g["groups"] for g in groups)
            out[name].append(result)
            print(f"  {name} run {i + 1}: {result['rps']:.0f} req/s, p99 {result['p99_us'] / 1000:.1f} ms, "
                  f"CPU {result['cpu_us_per_2xx']:.0f} us/2xx, non-2xx {result['non2xx']}, "
                  f"errors {result['errors']}, settle {result['settle_s']:.2f} s"
                  + (f", group {result['group_avg']:.1f}" if "group_avg" in result else ""), flush=True)
    return out


def query(args, variants, folder: Path) -> dict:
    from .events import cached_log
    from .query import READERS, path_for, record_answers

    log, info = cached_log(args.events)
    probes = {int(k): v for k, v in info["probes"].items()}
    req = folder / "timeline.req"
    req.write_text("\n".join([path_for(u) for _, u in sorted(probes.items())] * 4) + "\n")
    answers = folder / "answers.json"
    first = next((v for v in variants if v[1] not in ("bare", "same")), None)
    if first is not None:
        with serve(first[1], first[2], log, args.threads, folder / "record.log") as port:
            record_answers(port, probes, answers)
    out = {name: [] for name, _, _ in variants}
    for i in range(args.runs):
        for name, tree, env in variants:
            with server_for(tree, env, log, args.threads, folder / f"{name}.log", answers) as port:
                wrk(port, req, mode="get", connections=READERS, seconds=1)
                cpu = harness.tree_cpu_seconds(servers.pid(port))
                result = wrk(port, req, mode="get", connections=READERS, seconds=args.seconds)
                cpu = harness.tree_cpu_seconds(servers.pid(port)) - cpu
            ok = result["requests"] - result["non2xx"]
            result["cpu_us_per_2xx"] = cpu / ok * 1e6 if ok else float("inf")
            out[name].append(result)
            print(f"  {name} run {i + 1}: p99 {result['p99_us'] / 1000:.2f} ms, p50 "
                  f"{result['p50_us'] / 1000:.2f} ms, {result['rps']:.0f} req/s, CPU "
                  f"{result['cpu_us_per_2xx']:.0f} us/2xx, non-2xx {result['non2xx']}, "
                  f"errors {result['errors']}", flush=True)
    return out


def cli(args, variants, folder: Path) -> dict:
    import os
    import subprocess
    import threading

    from .events import cached_log

    log, info = cached_log(args.events)
    url = info["probes"][str(max(int(k) for k in info["probes"]))]
    runs = [("pass", "", {})] + [v for v in variants if v[0] != "pass"]
    out = {name: [] for name, _, _ in runs}
    for _ in range(args.runs):
        for name, tree, env in runs:
            if name == "pass":
                cmd, cwd = [sys.executable, "-c", "pass"], harness.ROOT
            else:
                cwd = Path(tree).resolve()
                cmd = [sys.executable, "-m", "receiver", "timeline", url, "--json"]
                env = {"IKLEDGER_DB": str(log), "PYTHONPATH": str(cwd), **env}
            # A blocking wait4, not subprocess.run: Popen.wait(timeout) polls with sleeps
            # growing to 50 ms, which rounded every wall time up to 31.5, 63.5, 113.5,
            # 163.5 … ms. The timer bounds the wait instead.
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd,
                                    stdout=subprocess.DEVNULL)
            timer = threading.Timer(120, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            wall = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise subprocess.CalledProcessError(proc.returncode, cmd)
            cpu = usage.ru_utime + usage.ru_stime
            out[name].append({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000})
    base = {k: statistics.median(r[k] for r in out["pass"]) for k in ("wall_ms", "cpu_ms")}
    for name, rows in out.items():
        wall, cpu = (statistics.median(r[k] for r in rows) for k in ("wall_ms", "cpu_ms"))
        print(f"  {name}: wall {wall:.0f} ms ({wall / base['wall_ms']:.1f}x pass), "
              f"CPU {cpu:.0f} ms ({cpu / base['cpu_ms']:.1f}x pass)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("ingest", "query", "cli"))
    parser.add_argument("variants", nargs="+", help="NAME=TREE[,KEY=VALUE...]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="serve --threads (default: serve's own default; the bare app gets 8)")
    parser.add_argument("--requests", type=int, default=40_000, help="ingest: distinct deliveries")
    parser.add_argument("--events", type=int, default=1_000_000, help="query, cli: log size")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variants]
    folder = harness.WORK / "ab"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"ingest": ingest, "query": query, "cli": cli}[args.mode](args, variants, folder)
    keys = {"ingest": ("rps", "p99_us", "cpu_us_per_2xx", "group_avg"),
            "query": ("p99_us", "p50_us", "rps", "cpu_us_per_2xx"),
            "cli": ("wall_ms", "cpu_ms")}[args.mode]
    print("\nmedians:")
    summary = {}
    for name, runs in out.items():
        summary[name] = {k: spread([r[k] for r in runs if k in r]) for k in keys if any(k in r for r in runs)}
        print(f"  {name}: " + ", ".join(f"{k} {statistics.median(s['runs']):.4g} "
                                          f"({min(s['runs']):.4g}-{max(s['runs']):.4g})"
                                          for k, s in summary[name].items()))
    stamp = time.strftime("%H%M%S")
    (folder / f"{args.mode}-{stamp}.json").write_text(json.dumps(
        {"argv": sys.argv[1:], "summary": summary, "runs": out}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
