"""Benchmark 3: a full rebuild of the timeline projection, versus a bare read-and-parse loop.

Both run as child processes over the same generated log, alternating (bare, rebuild,
bare, rebuild, …); each times itself around its own work. Peak RSS is the child's own
VmHWM: polled by the harness and reported by the child itself at exit (never wait4's
ru_maxrss, which includes the harness's own peak: see harness.run_with_rss), and the
row reports the max over the runs, since the bound must hold in every run. Issue 21's
counts read model is folded inside the timeline: a child per run rebuilds the timeline
without it (`timeline_projection(counts=False)`, into a projections file of its own,
removed at the end), the target row being the timeline's rebuild with it against that,
same run. A third child per run rebuilds every read model (the timeline, then the
event types and body search), timed against the timeline's own rebuild (information:
the search index is a separate index, measured by its own rows). A fourth
child per run is the whole `ikledger rebuild` process, timed start to exit against the
bare child's whole process (information). Rates are log events per second of that work: the whole
log divided by the time to get through it. The bare loop reads every event's body in
position order from a plain sqlite3 cursor and parses it with the standard library's
`json`; it stores nothing.

Run a child by hand: `python -m bench.rebuild rebuild LOG` or `python -m bench.rebuild bare LOG`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

from . import harness
from .harness import Figure, spread


def memory() -> dict:
    """This process's own peak RSS and where its resident memory is now, in bytes."""
    out = {}
    for name, keys in (("status", ("VmHWM",)), ("smaps_rollup", ("Rss", "Anonymous", "Shared_Clean",
                                                               "Private_Clean", "Private_Dirty"))):
        try:
            with open(f"/proc/self/{name}") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in keys:
                        out[key] = int(rest.split()[0]) * 1024
        except OSError:
            pass
    return out


# child kind: the projections it rebuilds. "all" is every default projection (issue 21:
# the timeline, then the overview's event types and body search); NO_COUNTS the timeline
# without its counts tables, in a file of its own (`no_counts_path`).
NO_COUNTS = "no-counts"
CHILDREN = {
    "rebuild": ("timeline",),
    NO_COUNTS: ("timeline",),
    "all": ("timeline", "event_types", "search"),
}


def no_counts_path(log: str | Path) -> Path:
    """The projections file of the NO_COUNTS child: never the one `serve` reads."""
    return Path(str(log).removesuffix(".db") + ".no-counts.projections.db")


def remove_no_counts(log: Path) -> None:
    path = no_counts_path(log)
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink(missing_ok=True)


def bare_loop(log: str) -> dict:
    conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    started = time.perf_counter()
    cursor = conn.execute("SELECT position, type, body FROM events ORDER BY position")
    events = 0
    loads = json.loads
    while rows := cursor.fetchmany(5000):
        for _position, _type, body in rows:
            loads(body)
            events += 1
    seconds = time.perf_counter() - started
    conn.close()
    return {"events": events, "seconds": seconds, "memory": memory()}


def rebuild(log: str, names: tuple[str, ...] = ("timeline",), counts: bool = True) -> dict:
    """Rebuild the projections `names`, one after the other, as `ikledger rebuild` does.

    `counts=False`: the timeline without its counts tables, into `no_counts_path(log)`.
    """
    from projections import ProjectionRunner, default_projections_path, open_projections
    from projections.video_timeline import timeline_projection
    from store import SQLiteStore

    store = SQLiteStore(log)
    db = open_projections(store, default_projections_path(log) if counts else no_counts_path(log))
    applied, each = {}, {}
    try:
        chosen = (timeline_projection(counts=False),) if not counts else None
        runner = ProjectionRunner(db, chosen) if chosen else ProjectionRunner(db)
        cpu = time.process_time()
        started = time.perf_counter()
        for name in names:
            t = time.perf_counter()
            applied.update(runner.rebuild(name))
            each[name] = time.perf_counter() - t
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        events = store.last_position()
    finally:
        db.close()
        store.close()
    return {"events": events, "applied": applied, "seconds": seconds, "each": each,
            "cpu_seconds": cpu, "memory": memory()}  # fmt: skip


def child(kind: str, log: Path) -> dict:
    """Run one child; returns its own timing plus its peak RSS and wall time."""
    done = harness.run_with_rss([sys.executable, "-m", "bench.rebuild", kind, str(log)], timeout=900)
    result = json.loads(done.out.decode().strip().splitlines()[-1])
    peak = max(done.peak_rss, result["memory"].get("VmHWM", 0))
    result.update({"rss_bytes": peak, "wait4_maxrss": done.wait4_maxrss, "wall": done.wall,
                   "rate": result["events"] / result["seconds"]})
    return result


def whole_cli(log: Path) -> dict:
    """`ikledger rebuild` as a whole process over `log`: wall time and polled peak RSS."""
    done = harness.run_with_rss([str(harness.VENV_BIN / "ikledger"), "rebuild", "--db", str(log)],
                                timeout=900)
    return {"wall": done.wall, "rss_bytes": done.peak_rss}


def _each(result: dict) -> str:
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["each"].items())


def run(plan, big: Path, small: Path) -> list[Figure]:
    bare, full, part, cli, every, no_counts = [], [], [], [], [], []
    # Each once first, unmeasured: so each measured rebuild without counts, like each
    # with them, drops the generation it replaces, and both start from a file the page
    # cache holds (the default projections file was last written benchmarks ago: the
    # first rebuild with counts of a run was the slowest of its three, 10.0 and 8.7 s
    # against 6.8-7.5 s, in two runs of 2026-12-08).
    remove_no_counts(big)
    child(NO_COUNTS, big)
    child("rebuild", big)
    for i in range(plan.runs):
        bare.append(child("bare", big))
        no_counts.append(child(NO_COUNTS, big))
        full.append(child("rebuild", big))
        every.append(child("all", big))
        part.append(child("rebuild", small))
        cli.append(whole_cli(big))
        mem = full[-1]["memory"]
        print(f"  rebuild run {i + 1}: bare {bare[-1]['rate']:.0f} ev/s "
              f"({bare[-1]['seconds']:.1f} s), rebuild {full[-1]['rate']:.0f} ev/s "
              f"({full[-1]['seconds']:.1f} s, peak RSS {full[-1]['rss_bytes'] / 2**20:.0f} MB, "
              f"wait4 {full[-1]['wait4_maxrss'] / 2**20:.0f} MB, at exit anon "
              f"{mem.get('Anonymous', 0) / 2**20:.0f} MB, file {mem.get('Rss', 0) / 2**20 - mem.get('Anonymous', 0) / 2**20:.0f} MB), "
              f"small {part[-1]['seconds']:.2f} s, ikledger rebuild {cli[-1]['wall']:.1f} s "
              f"vs bare process {bare[-1]['wall']:.1f} s; without counts "
              f"{no_counts[-1]['seconds']:.1f} s; every read model "
              f"{every[-1]['seconds']:.1f} s ({_each(every[-1])})", flush=True)
    remove_no_counts(big)
    n_big, n_small = full[0]["events"], part[0]["events"]
    with_counts = [a["seconds"] / b["seconds"] for a, b in zip(full, no_counts)]
    cpu_ratios = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in zip(full, no_counts)]
    scaling = spread([f["seconds"] for f in full])["median"] / spread([p["seconds"] for p in part])["median"]
    return [
        Figure("3 rebuild", f"timeline rebuild, {n_big:,} events", "events/s",
               spread([r["rate"] for r in full]), spread([r["rate"] for r in bare]),
               "bare loop: sqlite3 cursor + json.loads of every body", "min_ratio", 1.0,
               f"rate = log events / seconds; rebuild applies the "
               f"{sum(full[0].get('applied', {}).values()):,} video events it handles"),
        Figure("3 rebuild", "rebuild peak RSS", "MB",
               spread([r["rss_bytes"] / 2**20 for r in full]),
               spread([r["rss_bytes"] / 2**20 for r in bare]),
               "bare loop peak RSS", "max_value", 256.0,
               "max over the runs of the child's own VmHWM (/proc, polled every 10 ms and read "
               "by the child at exit); wait4's ru_maxrss, which includes the harness's own peak, "
               "said " + ", ".join(f"{r['wait4_maxrss'] / 2**20:.0f}" for r in full) + " MB",
               extra={"all_runs": True, "cli_rss_mb": [c["rss_bytes"] / 2**20 for c in cli]},
               stat="max"),
        Figure("3 rebuild", f"rebuild time {n_big:,} vs {n_small:,} events", "s",
               spread([r["seconds"] for r in full]), spread([r["seconds"] for r in part]),
               f"rebuild of {n_small:,} events", "max_ratio", 11.0 * (n_big / n_small) / 10,
               f"linear cost: ratio of medians; {n_big / n_small:.0f}x the events",
               extra={"scaling": scaling}),
        Figure("21 overview", f"timeline rebuild with the counts read model, {n_big:,} events",
               "s", spread([r["seconds"] for r in full]), spread([r["seconds"] for r in no_counts]),
               "the timeline rebuilt without its counts tables, same run", "max_ratio", 1.15,
               "counts and duration histograms per 5 min, hour and day, folded with the "
               "timeline; interleaved child processes; pairwise ratios "
               + ", ".join(f"{r:.2f}" for r in with_counts)
               + "; of CPU seconds (all threads) "
               + ", ".join(f"{r:.2f}" for r in cpu_ratios),
               extra={"pairwise_ratios": with_counts, "cpu_ratios": cpu_ratios}),
        Figure("21 overview", f"rebuild of every read model, {n_big:,} events", "s",
               spread([r["seconds"] for r in every]), spread([r["seconds"] for r in full]),
               "timeline rebuild alone, same run", "info", None,
               "the timeline (with its counts tables), then the overview's event types and body "
               "search, as `ikledger rebuild` does; the search index is measured by its own "
               "rows; per projection, run by run: "
               + "; ".join(_each(r) for r in every),
               extra={"each": [r["each"] for r in every]}),
        Figure("3 rebuild", f"`ikledger rebuild` whole process, {n_big:,} events", "s",
               spread([c["wall"] for c in cli]), spread([b["wall"] for b in bare]),
               "bare loop child, whole process, same file", "info", None,
               "start to exit, interpreter start and imports included (ratio: time, lower is "
               "better); its peak RSS: " + ", ".join(f"{c['rss_bytes'] / 2**20:.0f}" for c in cli)
               + " MB"),
    ]


if __name__ == "__main__":
    kind, log = sys.argv[1], sys.argv[2]
    if kind == "bare":
        print(json.dumps(bare_loop(log)))
    else:
        print(json.dumps(rebuild(log, CHILDREN[kind], counts=kind != NO_COUNTS)))
