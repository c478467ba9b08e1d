"""One rebuild at a time per projections file: an OS lock on a file beside it.

A rebuild drops every generation but the served one before it starts, so a second
rebuild running at the same time would drop the first one's new tables. `rebuild_lock`
takes an exclusive `flock` on `<projections file>.rebuild-lock` without waiting and
raises `RebuildBusy`, naming the holder's pid and start, when it is taken. The OS
releases the lock when its holder exits, however it dies, so a crashed rebuild
never blocks the next one. `flock` locks belong to an open file, so two threads of
one process exclude each other too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from store import utc_now

from .framework import RebuildBusy


def lock_path(db_path: str) -> str:
    return f"{db_path}.rebuild-lock"


@contextmanager
def rebuild_lock(db_path: str) -> Iterator[None]:
    """Hold the rebuild lock of the projections file at `db_path`, or raise RebuildBusy."""
    fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "holder unknown"
            raise RebuildBusy(
                f"another rebuild of {db_path} is running ({holder}); "
                "run it again once that one has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {utc_now()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
