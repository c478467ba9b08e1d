"""Starting the servers under test on 127.0.0.1, each in its own process group."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from . import harness
from .load import SECRET

IKLEDGER = harness.VENV_BIN / "ikledger"


@contextlib.contextmanager
def ikledger(db: Path, *, threads: int, env: dict | None = None, log: Path | None = None) -> Iterator[int]:
    """`ikledger serve` on a free port over `db`; yields the port, stops it on exit."""
    port = harness.free_port()
    proc = harness.start(
        [str(IKLEDGER), "serve", "--host", harness.HOST, "--port", str(port), "--db", str(db),
         "--threads", str(threads)],
        env={"IMAGEKIT_WEBHOOK_SECRET": SECRET, **(env or {})},
        log=log or db.with_suffix(".log"),
    )
    try:
        harness.wait_ready(port, proc)
        yield port
    finally:
        harness.stop(proc)


@contextlib.contextmanager
def bare(*, threads: int, log: Path | None = None) -> Iterator[int]:
    """The bare Falcon+waitress baseline on a free port; yields the port."""
    port = harness.free_port()
    proc = harness.start(
        [harness.sys.executable, "-m", "bench.bare_app", "--port", str(port), "--threads", str(threads)],
        log=log,
    )
    try:
        harness.wait_ready(port, proc)
        yield port
    finally:
        harness.stop(proc)
