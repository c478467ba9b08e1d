"""Benchmark 4: `GET /timeline` latency over the big log, and `ikledger timeline` as a process.

wrk, 8 connections, cycles through the probe assets (1 to 200 transformations each).
Two bare Falcon+waitress baselines run interleaved with it, run by run, on the same
route, cycle and concurrency: one answering a fixed small document (the floor), and
one sending the very bytes ikledger answered for each probe asset, recorded from it
before the runs (so the ratio to it is the cost of producing the answers, not of
sending them). A sequential pass per probe size gives the per-size medians
(information). The CLI is timed end to end as a process, against `python -c pass`
from the same interpreter as its baseline.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from . import harness, servers
from .bare_app import write_answers
from .harness import Figure, spread
from .load import wrk

READERS = 8


def path_for(url: str) -> str:
    return f"/timeline?asset={quote(url, safe='')}"


def _sequential(port: int, paths: list[str], repeat: int) -> dict[str, float]:
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
    out = {}
    try:
        for p in paths:
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                conn.request("GET", p)
                resp = conn.getresponse()
                resp.read()
                times.append((time.perf_counter() - t) * 1000)
                if resp.status != 200:
                    raise RuntimeError(f"GET {p} answered {resp.status}")
            out[p] = statistics.median(times)
    finally:
        conn.close()
    return out


def _process(args: list[str], env: dict, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        done = subprocess.run(args, env={**__import__("os").environ, **env}, capture_output=True,
                              timeout=120, cwd=harness.ROOT)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return times


def regular_install() -> Path:
    """bin/ of a venv holding the checkout as a user installs it: `pip install .`."""
    venv = harness.WORK / "regular-venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(harness.ROOT)],
                   check=True, timeout=900, capture_output=True)  # fmt: skip
    shutil.rmtree(harness.ROOT / "build", ignore_errors=True)  # what pip leaves in the checkout
    return venv / "bin"


def record_answers(port: int, probes: dict, out: Path) -> int:
    """GET each probe asset's timeline once and save {asset: (content type, body)}."""
    answers = {}
    for _, url in sorted(probes.items()):
        conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
        try:
            conn.request("GET", path_for(url))
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET timeline of {url} answered {resp.status}")
            answers[url] = (resp.getheader("Content-Type"), body)
        finally:
            conn.close()
    write_answers(out, answers)
    return max(len(body) for _, body in answers.values())


def run(plan, log: Path, probes: dict) -> list[Figure]:
    folder = harness.WORK / "query"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [path_for(url) for _, url in sorted(probes.items())]
    req_file = folder / "timeline.req"
    harness_write = "\n".join(paths * 4) + "\n"
    req_file.write_text(harness_write)
    answers = folder / "answers.json"
    with servers.ikledger(log, threads=plan.server_threads, log=folder / "serve.log") as port:
        biggest_answer = record_answers(port, probes, answers)

    ours, bare, same, per_size = [], [], [], []

    def measure(server, sequential: bool = False) -> dict:
        with server as port:
            if plan.warmup_seconds:
                wrk(port, req_file, mode="get", connections=READERS, seconds=plan.warmup_seconds)
            result = wrk(port, req_file, mode="get", connections=READERS, seconds=plan.query_seconds)
            if sequential:
                per_size.append(_sequential(port, paths, plan.query_sequential))
            return result

    for i in range(plan.runs):
        bare.append(measure(servers.bare(threads=plan.server_threads)))
        same.append(measure(servers.bare(threads=plan.server_threads, answers=answers)))
        ours.append(measure(servers.ikledger(log, threads=plan.server_threads, log=folder / "serve.log"),
                            sequential=True))
        print(f"  query run {i + 1}: ikledger p99 {ours[-1]['p99_us'] / 1000:.2f} ms "
              f"({ours[-1]['rps']:.0f} req/s, non-2xx {ours[-1]['non2xx']}), "
              f"bare same bytes p99 {same[-1]['p99_us'] / 1000:.2f} ms ({same[-1]['rps']:.0f} req/s), "
              f"bare fixed p99 {bare[-1]['p99_us'] / 1000:.2f} ms", flush=True)
    sizes = {str(n): statistics.median(run[path_for(url)] for run in per_size)
             for n, url in sorted(probes.items())}
    bad = sum(r["non2xx"] + r["errors"] for r in ours)
    figures = [
        Figure("4 query", "GET /timeline p99, 8 readers", "ms",
               spread([r["p99_us"] / 1000 for r in ours]), spread([r["p99_us"] / 1000 for r in bare]),
               "bare Falcon+waitress fixed answer, p99", "max_value", 10.0,
               f"probe assets of {', '.join(map(str, sorted(probes)))} transformations, cycled; "
               f"non-2xx+errors {bad}; sequential median ms by size: "
               + ", ".join(f"{k}: {v:.2f}" for k, v in sizes.items()),
               extra={"rps": [r["rps"] for r in ours], "per_size_median_ms": sizes}),
        Figure("4 query", "GET /timeline p99 vs the same bytes from a bare app", "ms",
               spread([r["p99_us"] / 1000 for r in ours]), spread([r["p99_us"] / 1000 for r in same]),
               "bare Falcon+waitress sending ikledger's recorded answers, p99", "max_ratio", 1.2,
               f"same route, cycle and readers; answers recorded from ikledger before the runs "
               f"(largest {biggest_answer:,} bytes); bare non-2xx+errors "
               f"{sum(r['non2xx'] + r['errors'] for r in same)}",
               extra={"rps": [r["rps"] for r in same]}),
    ]
    biggest = probes[max(probes)]
    env = {"IKLEDGER_DB": str(log)}
    # Both ways the issue asks: from this venv (the project installed editable, whose
    # import finder every interpreter start in it pays, `python -c pass` included), and
    # from a regular `pip install` of the checkout into a venv of its own.
    regular = regular_install()
    ways = [
        ("development venv, editable install", harness.VENV_BIN),
        ("regular `pip install .` into a fresh venv", regular),
    ]
    for way, bin_dir in ways:
        cli = [str(bin_dir / "ikledger"), "timeline", biggest, "--json"]
        base_times, cli_times = [], []
        for _ in range(plan.runs):
            base_times += _process([str(bin_dir / "python"), "-c", "pass"], {}, 1)
            cli_times += _process(cli, env, 1)
        print(f"  ikledger timeline ({way}): {statistics.median(cli_times) * 1000:.0f} ms, "
              f"python -c pass {statistics.median(base_times) * 1000:.0f} ms", flush=True)
        figures.append(
            Figure("4 query", f"`ikledger timeline URL --json` ({max(probes)} transformations), "
                   f"{way}", "ms",
                   spread([t * 1000 for t in cli_times]), spread([t * 1000 for t in base_times]),
                   "`python -c pass`, same interpreter and venv", "max_ratio", 5.0,
                   "whole process, start to exit, over the 1M log's read models")
        )
    return figures
