"""The read models' catch-up in a child process of `ikledger serve`.

`Projector(config).start()` runs `python -m receiver.runtime.catchup` on the same log and
read-model file: a `ProjectionRunner` that catches up, then sleeps on `store.wait`.
The request process then spends no CPU (and no GIL) on projections; `/healthz` and
`/metrics` still read every projection's checkpoint and lag from the shared file.

- The child dies with its parent, however the parent dies (SIGKILL included), and a
  child that dies is started again, as every child of `serve` (`receiver.runtime.children`);
  `status()` says so meanwhile.
- `stop()` closes the pipe, then waits a bounded time before terminating the child.

Two catch-ups on one file are safe (see `projections.catchup`), so a child still
finishing its pass while a new one starts loses or doubles nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from receiver import logs
from receiver.config import Config
from store import StoreError

from .children import Child, wait_for_parent_exit

log = logging.getLogger("ikledger.projector")

STOP_WAIT = 10.0  # seconds a stopping child may take to finish its pass
# After a pass that applied events, the child lets the next ones gather this long:
# each pass has a fixed cost (its read-model transaction and fsync, checkpoints), so
# fewer, larger passes cost less per event; a new event is served at most about this
# much later (the freshness target is 1 s).
PASS_SPACING = 0.2


class Projector(Child):
    """The parent's handle on the catch-up child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO", on_change=None):
        # `on_change(status())` whenever it changes (start, exit, restart), from
        # whichever thread changed it; `serve --workers N` shares it with its workers.
        env = config.child_env(os.environ)
        command = [sys.executable, "-m", "receiver.runtime.catchup", "--log-level", log_level]
        share = None if on_change is None else (lambda: on_change(self.status()))
        super().__init__("read-model catch-up", command, env, on_change=share)
        self.config = config

    def status(self) -> dict:
        """For /healthz: whether the child runs, its pid, restarts and last exit code."""
        return {
            "process": "child",
            "running": self.running,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop the child: end of file on its pipe, then SIGTERM, then SIGKILL. Idempotent."""
        super().stop(timeout)


# -- the child ----------------------------------------------------------------------


def _catch_up(runner, store, stop: threading.Event, spacing: float = PASS_SPACING) -> None:
    """The child's catch-up loop: `runner.poll_once` passes, `spacing` apart while busy.

    A failing pass never ends the loop nor makes it spin. An outage (the database
    down for minutes) logs one line when passes start failing, one when the reason
    changes, and a summary when a pass succeeds again; each failure's traceback is
    at debug level, except for an error the store did not expect (a bug), whose
    first traceback is logged in full.
    """
    from projections import ProjectionError  # the child's import, not serve's

    failing: str | None = None  # the reason the last pass failed; None when it succeeded
    failed, since = 0, 0.0
    while not stop.is_set():
        try:
            # Read before the pass: an event appended during it wakes the wait at once.
            seen = store.last_position()
            applied = runner.poll_once()
        except Exception as exc:  # never let the loop die silently, nor spin
            reason = f"{type(exc).__name__}: {exc}"
            log.debug("read-model catch-up pass failed", exc_info=True)
            if failing is None:
                failed, since = 0, time.monotonic()
            if reason != failing:
                expected = isinstance(exc, (StoreError, ProjectionError))
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "read-model catch-up failing: %s; retrying every %g s",
                    reason,
                    runner.idle_wait,
                    exc_info=None if expected else exc,
                )
            failing, failed = reason, failed + 1
            stop.wait(runner.idle_wait)
            continue
        if failing is not None:
            log.info(
                "read-model catch-up resumed after %d failed passes (%.0f s)",
                failed,
                time.monotonic() - since,
            )
            failing = None
        try:
            if any(applied.values()) and stop.wait(spacing):
                return
            store.wait(seen, runner.idle_wait)
        except Exception:  # the log's wait failing is the next pass's news
            log.debug("waiting for the log failed", exc_info=True)
            stop.wait(runner.idle_wait)


def main(argv: list[str] | None = None) -> int:
    """Catch up the read models until the parent exits (or SIGTERM)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.catchup")
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    config = Config.from_env()
    logs.configure(args.log_level, config.log_format)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C stops the parent, then us

    import projections

    from .wiring import open_log

    store, views = open_log(config)
    try:
        runner = projections.ProjectionRunner(views, projections.chosen(config.projections))
        stop = threading.Event()
        loop = threading.Thread(
            target=_catch_up, args=(runner, store, stop), name="ikledger-projections"
        )
        loop.start()
        try:
            wait_for_parent_exit(args.parent_fd, args.parent_pid)
        finally:
            stop.set()
            loop.join(STOP_WAIT)
            views.close()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
