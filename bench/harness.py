"""Plumbing shared by the benchmarks: timing statistics, child processes, ports, machine facts.

Every child process is started in its own process group and registered, so that
`cleanup()` (run at exit and on SIGTERM/SIGINT) kills it even when a benchmark fails.
"""

from __future__ import annotations

import atexit
import http.client
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # servers and load only ever use the loopback address

_children: list[subprocess.Popen] = []


# -- statistics --------------------------------------------------------------


def spread(values: Sequence[float]) -> dict:
    """Median, min, max and every run of a list of measurements."""
    values = list(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


@dataclass
class Figure:
    """One row of the results: a measured figure, its same-moment baseline and its target.

    `kind` says how the target reads: "min_ratio" (ratio >= target), "max_ratio"
    (ratio <= target), "max_value" (median value <= target), "eq_value" (value == target)
    or "info" (no target). `stat` is the statistic the row reports and judges: "median",
    or "max" for a bound that must hold in every run (peak RSS).
    """

    bench: str
    name: str
    unit: str
    value: dict
    baseline: dict | None = None
    baseline_name: str | None = None
    kind: str = "info"
    target: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)
    stat: str = "median"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline[self.stat]:
            return None
        return self.value[self.stat] / self.baseline[self.stat]

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.kind == "info":
            return None
        if self.kind == "min_ratio":
            return self.ratio is not None and self.ratio >= self.target
        if self.kind == "max_ratio":
            return self.ratio is not None and self.ratio <= self.target
        if self.kind == "max_value":
            return self.value["max" if self.extra.get("all_runs") else self.stat] <= self.target
        if self.kind == "eq_value":
            return self.value["max"] == self.target
        raise ValueError(self.kind)

    def as_dict(self) -> dict:
        return {
            "bench": self.bench,
            "name": self.name,
            "unit": self.unit,
            "value": self.value,
            "baseline_name": self.baseline_name,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "target_kind": self.kind,
            "stat": self.stat,
            "pass": self.passed,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


# -- processes ---------------------------------------------------------------


def start(args: Sequence[str], *, env: dict | None = None, log: Path | None = None, **kw):
    """Start a child in its own process group; it is killed by cleanup() whatever happens."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(args),
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
        **{"cwd": ROOT, **kw},
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    if proc in _children:
        _children.remove(proc)


def cleanup() -> None:
    for proc in list(_children):
        stop(proc, timeout=3)


def _on_signal(signum, frame):
    cleanup()
    sys.exit(128 + signum)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, _on_signal)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen, path: str = "/healthz", limit: float = 30.0):
    """Poll until the server answers 200 on `path`; raise if it dies or takes over `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {proc.args!r} exited with {proc.returncode} at start")
        try:
            if http_get(port, path, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server {proc.args!r} not ready after {limit} s")




@dataclass(frozen=True)
class ChildRun:
    """A finished child: wall time, its own peak RSS, what wait4 said, its stdout."""

    wall: float
    peak_rss: int  # bytes: the highest VmHWM read from /proc while it ran
    wait4_maxrss: int  # bytes: NOT the child's own peak (see run_with_rss)
    out: bytes


def vm_hwm(pid: int) -> int:
    """VmHWM of `pid` in bytes (peak RSS of its current address space); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_with_rss(args: Sequence[str], *, env: dict | None = None, timeout: float = 900.0) -> ChildRun:
    """Run a child to completion, polling its own peak RSS (VmHWM) every 10 ms.

    wait4's ru_maxrss is not the child's peak: Linux folds the RSS high-water mark of
    the address space a process leaves at exec into ru_maxrss, and a posix_spawn'd
    (vfork) child leaves this harness's address space. So ru_maxrss is at least this
    process's own peak -- 97 MB after reusing the logs, ~400 MB after generating the
    1M log in-process -- whatever the child does. VmHWM belongs to the child's own
    address space after exec; it is monotonic, so polling misses at most the last
    10 ms. Children that report their own VmHWM at exit (bench.rebuild) close that gap.
    stderr goes to a temp file so the child never blocks on a full pipe.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    out_path = WORK / f"child-{os.getpid()}.out"
    err_path = WORK / f"child-{os.getpid()}.err"
    peak = 0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        pid = os.posix_spawn(
            str(args[0]),
            [str(a) for a in args],
            {**os.environ, **(env or {})},
            file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                          (os.POSIX_SPAWN_DUP2, err.fileno(), 2)],
            setsid=True,
        )
        deadline = started + timeout
        while True:
            peak = max(peak, vm_hwm(pid))
            done_pid, status, usage = os.wait4(pid, os.WNOHANG)
            if done_pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.wait4(pid, 0)
                raise RuntimeError(f"{args!r} took over {timeout} s")
            time.sleep(0.01)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {code}: {err_path.read_text()[-2000:]}")
    return ChildRun(wall, peak, usage.ru_maxrss * 1024, out_path.read_bytes())


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every descendant alive now (and reaped ones).

    psutil's cpu_times include children_user/children_system: the CPU of descendants
    already waited for, so a worker that exits during a run is still counted.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def rss_self() -> int:
    """Peak RSS of this process so far, bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- machine facts -----------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _ikledger_sqlite() -> str:
    from store.sqlite_engine import sqlite3 as engine

    return engine.sqlite_version


def tool_version(args: Iterable[str]) -> str | None:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def machine() -> dict:
    """What the figures were measured on."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        cpu = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_bytes": mem,
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,  # the interpreter's: the bare loops'
        "sqlite_ikledger": _ikledger_sqlite(),  # sqlean.py's: ikledger's own
        "wrk": tool_version(["wrk", "--version"]),
        "libraries": {
            name: _version(name)
            for name in (
                "ikledger",
                "falcon",
                "waitress",
                "orjson",
                "sqlite-utils",
                "standardwebhooks",
                "eventsourcing",
                "psutil",
            )
        },
    }
