"""Run the benchmark suite of issue 4 and write results.json and RESULTS.md.

    python -m bench.run            # full suite (make bench), ~10 minutes on 2 cores
    python -m bench.run --quick    # small sizes, short runs (make bench-quick), < 1 minute
    python -m bench.run --only ingest,append

A benchmark that crashes is reported as not run; the others still run. The exit code is
0 when every selected benchmark ran (targets may still be missed: the table says so),
1 otherwise, or with --strict, also when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import harness, report
from .load import check_signing, ensure_wrk

BENCHES = ("ingest", "append", "rebuild", "query", "overview", "freshness", "storage", "ui", "forward", "history", "pg")


@dataclass(frozen=True)
class Plan:
    runs: int = 3
    connections: int = 16
    server_threads: int = 8
    ingest_seconds: int = 8
    ingest_requests: int = 60_000
    ingest_warmup_requests: int = 3_000
    warmup_seconds: int = 1
    append_events: int = 20_000
    big_events: int = 1_000_000
    small_events: int = 100_000
    query_seconds: int = 5
    query_sequential: int = 20
    fresh_seconds: int = 8
    pg_capacity_events: int = 40_000
    pg_rebuild_events: int = 1_000_000
    forward_events: int = 20_000
    profile: bool = True


QUICK = Plan(
    ingest_seconds=1, ingest_requests=8_000, ingest_warmup_requests=500, warmup_seconds=0, append_events=2_000,
    big_events=20_000, small_events=2_000, query_seconds=1, query_sequential=5, fresh_seconds=2,
    pg_capacity_events=4_000, pg_rebuild_events=20_000, forward_events=2_000, profile=False,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--out", type=Path, help="folder for results.json and RESULTS.md "
                        "(default bench/ for the full suite, bench/work/quick/ for --quick)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="py-spy profiles of missed targets (default: on, off with --quick)")
    parser.add_argument("--merge", action="store_true", help="keep the rows of OUT/results.json "
                        "for the benchmarks not selected (e.g. --only pg --merge)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--ingest-max", type=float, help="req/s: the ingest maximum that freshness "
                        "loads half of, when ingest is not run (e.g. --only freshness --ingest-max 4142)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.profile is not None:
        plan = Plan(**{**asdict(plan), "profile": args.profile})
    selected = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(selected) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    out = args.out or (harness.ROOT / "bench" / ("work/quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)

    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    check_signing()
    ensure_wrk()
    results = {
        "command": "make bench-quick" if args.quick else "make bench",
        "argv": sys.argv[1:],
        "mode": "quick" if args.quick else "full",
        "started_at": started_at,
        "machine": harness.machine(),
        "plan": asdict(plan),
        "figures": [],
        "errors": {},
        "setup": {},
        "profiles": {},
        "bounds": {},
    }
    figures, context = [], {}
    if args.ingest_max:
        context["max_rps"] = args.ingest_max

    def attempt(name, fn):
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"[:500]
            value = None
        results["setup"][f"{name}_seconds"] = round(time.perf_counter() - t, 1)
        return value

    if "ingest" in selected:
        got = attempt("ingest", lambda: __import__("bench.ingest", fromlist=["run"]).run(plan))
        if got:
            figures += got[0]
            context["max_rps"] = got[1]["max_rps"]
    if "append" in selected:
        figures += attempt("append", lambda: __import__("bench.append", fromlist=["run"]).run(plan)) or []

    needs_logs = {"rebuild", "query", "overview", "freshness", "storage"} & set(selected)
    if needs_logs:
        from .events import cached_log

        def logs():
            big, big_info = cached_log(plan.big_events)
            small, small_info = cached_log(plan.small_events)
            for info in (big_info, small_info):
                how = "reused" if info["reused"] else "generated in {:.0f} s".format(info["seconds"])
                print(f"  log of {info['events']:,} events: {how}", flush=True)
            return big, big_info, small, small_info

        got = attempt("generate logs", logs)
        if got:
            big, big_info, small, small_info = got
            results["setup"]["big_log"] = {k: v for k, v in big_info.items() if k != "probes"}
            results["setup"]["small_log"] = {k: v for k, v in small_info.items() if k != "probes"}
            probes = {int(k): v for k, v in big_info["probes"].items()}
            small_probes = {int(k): v for k, v in small_info["probes"].items()}
            context.update(big=big, probes=probes)
            if "storage" in selected:
                from . import storage

                figures += attempt("storage", lambda: storage.run(big, big_info)) or []
            from . import rebuild

            if "rebuild" in selected:
                figures += attempt("rebuild", lambda: rebuild.run(plan, big, small)) or []
            else:  # the query and freshness servers need built projections
                attempt("prepare projections", lambda: [rebuild.child("all", p) for p in (big, small)])
            if "query" in selected:
                from . import query

                figures += attempt("query", lambda: query.run(plan, big, probes)) or []
            if "overview" in selected:
                from . import overview

                figures += attempt("overview", lambda: overview.run(plan, big)) or []
            if "freshness" in selected:
                from . import freshness

                if "max_rps" not in context:
                    results["errors"]["freshness"] = "needs the ingest benchmark's maximum (run with ingest)"
                else:
                    figures += attempt("freshness", lambda: freshness.run(plan, small, small_probes, context["max_rps"])) or []

    if "ui" in selected:  # issue 10's page render time, in process
        from . import ui

        figures += attempt("ui", lambda: ui.run(plan)) or []

    if "forward" in selected:  # issue 18: the backlog in process, then beside `serve`
        from . import forward, forward_live

        figures += attempt("forward", lambda: forward.run(plan)) or []
        figures += attempt("forward live", lambda: forward_live.run(plan)) or []

    if "history" in selected:  # issue 19's tree, proofs and retention
        from . import history

        figures += attempt("history", lambda: history.run(plan)) or []

    if "pg" in selected:  # issue 9's PostgreSQL benchmarks, on a cluster of their own
        def postgres():
            from . import pg_suite

            try:
                return pg_suite.run(plan)
            except pg_suite.PartialRun as partial:
                results["errors"].update({f"pg {k}": v for k, v in partial.errors.items()})
                return partial.figures

        figures += attempt("pg", postgres) or []

    results["figures"] = [f.as_dict() for f in figures]
    missed = [f for f in figures if f.passed is False]
    if plan.profile and missed:
        from . import profiles

        attempt("profiles", lambda: profiles.run(plan, missed, results, context))
    results["duration_s"] = time.perf_counter() - started
    if args.merge and (out / "results.json").exists():
        import json

        results = report.merge(json.loads((out / "results.json").read_text()), results)
    report.write(results, out / "results.json", out / "RESULTS.md")
    print(f"\nwrote {out / 'results.json'} and {out / 'RESULTS.md'} in {results['duration_s']:.0f} s")
    for f in results["figures"]:
        verdict = {True: "pass", False: "FAIL", None: "info"}[f["pass"]]
        ratio = f" ratio {f['ratio']:.2f}" if f["ratio"] is not None else ""
        print(f"  [{verdict}] {f['bench']}: {f['name']}: {f['value']['median']:.4g} {f['unit']}{ratio}")
    for name, error in results["errors"].items():
        print(f"  [not run] {name}: {error}")
    if results["errors"] or (args.strict and missed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
