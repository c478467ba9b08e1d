"""Wake waiters when the log grows: LISTEN on a dedicated connection, a poll as fallback."""

from __future__ import annotations

import threading
import time

import psycopg

from ..contract import StoreError
from .connect import Target

CHANNEL = "ikledger_events"  # ikledger_append NOTIFYs it with the new head position
POLL = 1.0  # a missed notification (or a lost listener) delays a waiter by at most this


class Listener:
    """A thread that LISTENs and bumps a counter on every notification.

    Started by the first `wait`. While its connection is down it reconnects every POLL
    seconds; waiters never depend on it, since they re-read the head at least every POLL.
    """

    def __init__(self, target: Target):
        self.target = target
        self._cond = threading.Condition()
        self._seen = 0  # notifications received so far
        self._closed = False
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def mark(self) -> int:
        """The current notification count; pass it to `sleep` after re-reading the head."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="ikledger-listen", daemon=True
                )
                self._thread.start()
            return self._seen

    def sleep(self, mark: int, timeout: float) -> None:
        """Sleep until a notification newer than `mark`, at most min(timeout, POLL)."""
        with self._cond:
            if self._seen == mark and not self._closed:
                self._cond.wait(min(timeout, POLL))

    def _bump(self) -> None:
        with self._cond:
            self._seen += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._closed:
            try:
                self._conn = self.target.connect()
                self._conn.execute(f"LISTEN {CHANNEL}")
                self._bump()  # anything committed while not listening: look again
                while not self._closed:
                    for _ in self._conn.notifies(timeout=POLL, stop_after=1):
                        self._bump()
            except (psycopg.Error, StoreError):
                pass
            finally:
                self._drop()
            if not self._closed:
                time.sleep(POLL)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=POLL * 3)
