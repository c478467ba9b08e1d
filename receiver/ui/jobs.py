"""The log page's background jobs (verify, rebuild): one at a time across the workers.

A job runs on a thread of the request worker that started it, never inside the
request. Single flight is an exclusive `flock` on `<name>.lock` in the UI-state folder
that every request worker of one `serve` shares (a thread lock without that folder:
one process), held for the whole run: the OS lets go when its holder exits, however
it dies, so a job whose worker died shows as failed, and no pid is ever compared
(a pid can be reused). The state (running, progress, result or error) is a
`SharedRecord`, so every worker's page shows it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

from .shared import SharedRecord

log = logging.getLogger("ikledger.ui")

FIELDS = ("running", "started_at", "finished_at", "result", "error", "progress")
DIED = "the request worker running it stopped before it finished"
RELEASE_WAIT = 1.0  # s: how long `start` waits for a finished job's holder to let go

# A job's work: given a `report(progress text)` callback, returns the result (JSON-ready).
Work = Callable[[Callable[[str], None]], object]


class Flight:
    """One holder at a time: a `flock` on a file in `folder`, or a thread lock."""

    def __init__(self, name: str, folder: str | None):
        self.path = os.path.join(folder, name + ".lock") if folder else None
        self._local = threading.Lock()

    def take(self) -> int | None:
        """A handle for `release`, or None when another holds it (never waits)."""
        if self.path is None:
            return 0 if self._local.acquire(blocking=False) else None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def release(self, handle: int) -> None:
        if self.path is None:
            self._local.release()
        else:
            os.close(handle)  # closing the descriptor lets go of the flock

    def held(self) -> bool:
        """Whether a holder runs now (in any worker)."""
        if self.path is None:
            return self._local.locked()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


class Job:
    """A background job of the log page; `view()` is what the page shows of it."""

    def __init__(self, name: str, folder: str | None = None):
        self.name = name
        self.state = SharedRecord(name, folder)
        self.flight = Flight(name, folder)

    def view(self) -> SimpleNamespace:
        """running, started_at, finished_at, result, error, progress (None when unknown)."""
        state = dict(self.state.get() or {})
        if state.get("running") and not self.flight.held():
            state.update(running=False, finished_at=None, error=DIED)
        return SimpleNamespace(**{name: state.get(name) for name in FIELDS})

    def start(self, work: Work) -> bool:
        """Run `work` on a thread; False (nothing started) while one runs in any worker."""
        handle = self.flight.take()
        if handle is None and not (self.state.get() or {}).get("running"):
            # The holder has written its result and is letting go (it writes first, so
            # `view` never shows a live job as died): wait that moment out, bounded.
            deadline = time.monotonic() + RELEASE_WAIT
            while handle is None and time.monotonic() < deadline:
                time.sleep(0.005)
                handle = self.flight.take()
        if handle is None:
            return False
        try:
            state: dict = {"running": True, "started_at": time.time()}
            self.state.set(state)
            thread = threading.Thread(
                target=self._run, args=(work, state, handle), name=f"ui-{self.name}", daemon=True
            )
            thread.start()
        except BaseException:
            self.flight.release(handle)
            raise
        return True

    def _run(self, work: Work, state: dict, handle: int) -> None:
        def report(progress: str) -> None:
            state["progress"] = progress
            self.state.set(state)

        result, error = None, None
        try:
            result = work(report)
        except Exception as exc:  # noqa: BLE001 -- whatever it was, the page reports it
            log.warning("%s from the log page failed: %s: %s", self.name, type(exc).__name__, exc)
            error = str(exc)
        finally:
            try:
                self.state.set(
                    {
                        **state,
                        "running": False,
                        "finished_at": time.time(),
                        "result": result,
                        "error": error,
                    }
                )
            finally:
                self.flight.release(handle)
