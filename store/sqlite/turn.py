"""The writers' turn: an exclusive `flock` on a lock file, waited for a bounded time.

`flock` has no timeout. The wait blocks in the kernel on a helper thread (so the
writer is woken the moment the holder lets go, as a plain `flock` would be) while
the writer waits for it at most `timeout` seconds. At most one helper is in flight
per lock file: a writer that gave up and asks again waits for the same one. A helper
that gets the lock after its writer gave up lets go at once, so a late helper never
holds up the writers of other processes.
"""

from __future__ import annotations

import fcntl
import threading

from ..contract import StoreUnavailable


class WritersTurn:
    """An exclusive `flock` on `fd`, acquired within a timeout or not at all."""

    def __init__(self, fd: int, timeout: float):
        self.fd = fd
        self.timeout = timeout
        self._lock = threading.Lock()
        self._helper: threading.Event | None = None  # set once its flock is had
        self._waiting = False  # a writer waits for the helper's flock

    def acquire(self) -> None:
        """Take the turn, or raise StoreUnavailable after `timeout` seconds."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # uncontended: no thread
            return
        except BlockingIOError:
            pass
        with self._lock:
            if self._helper is None:
                self._helper = threading.Event()
                threading.Thread(
                    target=self._wait, args=(self._helper,), name="ikledger-turn", daemon=True
                ).start()
            had, self._waiting = self._helper, True
        had.wait(self.timeout)
        with self._lock:
            self._waiting = False
            if had.is_set():  # the helper handed the turn over
                return
        raise StoreUnavailable(
            f"the writers' turn was not had within {self.timeout:g} s: a writer of another "
            "process holds it (stopped or stuck mid-commit?); nothing was stored"
        )

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    @property
    def pending(self) -> bool:
        """A helper still blocks in `flock` (the descriptor must stay open)."""
        with self._lock:
            return self._helper is not None

    def _wait(self, had: threading.Event) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        with self._lock:
            self._helper = None
            if self._waiting:
                had.set()
            else:  # its writer gave up: no one is to hold the turn
                fcntl.flock(self.fd, fcntl.LOCK_UN)
