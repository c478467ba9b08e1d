"""Group commit for attempts: one transaction for every attempt that finished meanwhile.

A forwarder's workers finish attempts concurrently; journalling each in its own
transaction makes them queue for the database's write lock and pay one durable commit
(one fsync, one round trip) each, which bounds a destination's throughput. Here one
thread per forwarder commits, in one transaction, every attempt handed to it while its
previous commit ran (and, with `gather`, until that long after the previous commit
began), then tells each attempt's `done` callback the outcome. A worker
hands its attempt over and goes on to the next request; the delivery stays held (not
attempted again, its key blocked) until `done` runs.

At least once holds as before: a delivery is marked delivered only by the transaction
that journals its attempt, so an attempt whose commit never happened (a crash, a
failed commit) leaves its delivery pending, to be attempted again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from store.forwarding import Attempt, ForwardingState

log = logging.getLogger("ikledger.forwarding")

# done(recorded, error): recorded is False when the delivery is gone; error is the
# store's error when the group could not be committed (nothing of it recorded).
Done = Callable[[bool, BaseException | None], None]


class AttemptJournal:
    """Records attempts through `ForwardingState.record_attempts`, in groups, on one thread."""

    def __init__(
        self,
        state: ForwardingState,
        *,
        name: str = "ikl-fwd-journal",
        gather: float = 0.0,
        after: Callable[[], None] | None = None,
    ):
        """`gather`: the shortest time in seconds from one commit's start to the next's;
        `after()` runs once a group's `done` callbacks have all run (on the journal's
        thread; its exceptions are logged)."""
        self._state = state
        self.gather = gather
        self._after = after
        self._cond = threading.Condition()
        self._queue: list[tuple[Attempt, str, Done]] = []
        self._closing = False
        self.groups = 0  # transactions committed (or tried)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, attempt: Attempt, state: str, done: Done) -> None:
        """Queue `attempt` (its delivery set to `state`); `done` runs once it is committed.

        `done` runs on the journal's thread; its exceptions are logged.
        """
        with self._cond:
            if self._closing:
                raise RuntimeError("the attempt journal is closed")
            self._queue.append((attempt, state, done))
            self._cond.notify()

    def close(self) -> None:
        """Commit what is queued, then stop the thread (submitting after this fails)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        started = float("-inf")
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                # Fewer, bigger transactions leave the log's write lock to ingest.
                while not self._closing:
                    left = started + self.gather - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    return
                group, self._queue = self._queue, []
            started = time.monotonic()
            self._commit(group)

    def _commit(self, group: list[tuple[Attempt, str, Done]]) -> None:
        recorded = [False] * len(group)
        error: BaseException | None = None
        try:
            recorded = self._state.record_attempts([(a, s) for a, s, _ in group])
        except BaseException as exc:  # noqa: BLE001 -- every attempt of the group must hear
            error = exc
        self.groups += 1
        for (attempt, _, done), ok in zip(group, recorded, strict=True):
            try:
                done(ok, error)
            except Exception:
                log.exception("%s: after journalling attempt %s", attempt.destination, attempt)
        if self._after is not None:
            try:
                self._after()
            except Exception:
                log.exception("after journalling a group of attempts")
