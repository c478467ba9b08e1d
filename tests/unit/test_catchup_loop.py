"""The catch-up child's loop during a database outage: one line per change, no tracebacks.

A fake runner and log (plain objects, no database) drive `_catch_up` through an outage
of several passes and its end; the loop stops itself once the script is played.
"""

from __future__ import annotations

import logging
import threading

from receiver.runtime.catchup import _catch_up
from store import StoreUnavailable


class ScriptedRunner:
    """`poll_once` plays `script` (an exception to raise, or a dict of applied counts)."""

    idle_wait = 0.0

    def __init__(self, script: list, stop: threading.Event):
        self.script = list(script)
        self.stop = stop

    def poll_once(self) -> dict:
        step = self.script.pop(0)
        if not self.script:
            self.stop.set()  # the last step: the loop ends after it
        if isinstance(step, BaseException):
            raise step
        return step


class QuietLog:
    def last_position(self) -> int:
        return 0

    def wait(self, position: int, timeout: float) -> None:
        pass


def test_a_database_outage_logs_its_start_and_its_end_not_each_failed_pass(caplog):
    down = StoreUnavailable("connection refused (postgresql://127.0.0.1:5999/ikledger)")
    stop = threading.Event()
    runner = ScriptedRunner([{}, down, down, down, down, {"timeline": 0}, {}], stop)
    with caplog.at_level(logging.DEBUG, logger="ikledger.projector"):
        _catch_up(runner, QuietLog(), stop, spacing=0.0)
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in loud] == ["WARNING", "INFO"], [r.getMessage() for r in loud]
    assert "connection refused" in loud[0].getMessage()
    assert "4 failed passes" in loud[1].getMessage()
    assert not any(r.exc_info for r in loud)  # the tracebacks are at debug level only
