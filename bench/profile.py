"""Sampling profiles of a running server with py-spy, summarised for the results.

A profile is taken in a separate run, never during a measured one (sampling costs the
target a little). The summary lists the functions holding the most on-CPU samples,
inclusive (anywhere on the stack) and by own time (top of the stack).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from .harness import ROOT, VENV_BIN


def py_spy() -> str | None:
    found = VENV_BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, *, rate: int = 250, native: bool = False,
           gil: bool = False, children: bool = False) -> subprocess.Popen | None:
    """Start py-spy sampling `pid` for `seconds` into a collapsed-stack file; None without py-spy.

    `children`: sample `pid`'s child processes too (`serve` answers nothing itself: its
    request workers and catch-up child do the work).
    """
    tool = py_spy()
    if tool is None:
        return None
    args = [tool, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", str(rate),
            "--format", "raw", "-o", str(out), "--nonblocking"]
    if native:
        args.append("--native")
    if children:
        args.append("--subprocesses")
    if gil:  # only the thread holding the GIL: where the one usable core of Python goes
        args.append("--gil")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function and file:line
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", f"{ROOT}/", "python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def summarise(path: Path, top: int = 15) -> dict:
    """Top functions by inclusive and by own share of samples in a collapsed-stack file."""
    inclusive, own = Counter(), Counter()
    total = 0
    if not path.exists():
        return {"samples": 0, "inclusive": [], "own": []}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        total += n
        for f in set(frames):
            inclusive[f] += n
        if frames:
            own[frames[-1]] += n

    def pct(counter):
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "inclusive": pct(inclusive), "own": pct(own)}
