"""A child of `ikledger serve` that exits cleanly: stopping is not a crash.

Real child processes (a one-line Python), the `Child` handle of `receiver.runtime.children`.
Waits are bounded by BOUND; the restart delay is longer than any test takes, so what
the handle does after an exit never depends on timing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from receiver.runtime.children import Child

BOUND = 10.0


def exiting_child(code: str, *, restart_delay: float) -> tuple[Child, threading.Event]:
    """A child that runs `code` (then exits), and an event set once its exit is seen."""
    exited = threading.Event()
    child: Child

    def on_change() -> None:
        if child.last_exit is not None:
            exited.set()

    child = Child(
        "test child",
        [sys.executable, "-c", code],
        dict(os.environ),
        on_change=on_change,
        restart_delay=restart_delay,
    )
    return child, exited


def test_a_child_ended_by_sigterm_while_serve_stops_logs_no_restart(caplog):
    # systemd (and `kill -TERM -PGID`) signals the whole group: the child exits 0 from
    # its SIGTERM handler before the parent, handling the same signal, stops it.
    child, exited = exiting_child("import sys; sys.exit(0)", restart_delay=BOUND)
    with caplog.at_level(logging.INFO, logger="ikledger.children"):
        child.start()
        assert exited.wait(BOUND), "the child never exited"
        child.stop(BOUND)
    assert child.restarts == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "ikledger.children"]
    assert not [m for m in messages if "restarting" in m], messages


def test_a_child_that_crashes_is_reported_at_once_and_restarted(caplog):
    child, exited = exiting_child("import sys; sys.exit(3)", restart_delay=0.0)
    with caplog.at_level(logging.INFO, logger="ikledger.children"):
        child.start()
        assert exited.wait(BOUND), "the child never exited"
        deadline = time.monotonic() + BOUND
        while child.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.stop(BOUND)
    assert child.restarts >= 1
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("exited (3); restarting" in m for m in messages), messages
