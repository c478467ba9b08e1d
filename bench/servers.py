"""Starting the servers under test on 127.0.0.1, each in its own process group."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from . import harness
from .load import SECRET

IKLEDGER = harness.VENV_BIN / "ikledger"

_pids: dict[int, int] = {}  # port -> pid of the server running on it


def pid(port: int) -> int:
    """Process id of the server this module started on `port` (root of its process tree)."""
    return _pids[port]


@contextlib.contextmanager
def _serving(args: list[str], *, env: dict | None, log: Path | None) -> Iterator[int]:
    port = harness.free_port()
    proc = harness.start([*args, "--port", str(port)], env=env, log=log)
    _pids[port] = proc.pid
    try:
        harness.wait_ready(port, proc)
        yield port
    finally:
        _pids.pop(port, None)
        harness.stop(proc)


def ikledger(db: Path, *, threads: int | None, env: dict | None = None, log: Path | None = None):
    """`ikledger serve` on a free port over `db`; yields the port, stops it on exit.

    `threads=None` leaves `serve` at its default thread count.
    """
    extra = [] if threads is None else ["--threads", str(threads)]
    return _serving(
        [str(IKLEDGER), "serve", "--host", harness.HOST, "--db", str(db), *extra],
        env={"IMAGEKIT_WEBHOOK_SECRET": SECRET, **(env or {})},
        log=log or db.with_suffix(".log"),
    )


def bare(*, threads: int, log: Path | None = None, answers: Path | None = None):
    """The bare Falcon+waitress baseline on a free port; yields the port.

    With `answers` (a file written by `bare_app.write_answers`), `GET /timeline` sends
    the recorded bytes for each recorded asset instead of the fixed small document.
    """
    extra = ["--answers", str(answers)] if answers else []
    return _serving(
        [harness.sys.executable, "-m", "bench.bare_app", "--threads", str(threads), *extra],
        env=None,
        log=log,
    )
