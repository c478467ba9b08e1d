"""The parent's handles on the two background children of `ikledger serve`.

`Projector` runs the read models' catch-up child (`python -m receiver.runtime.catchup`),
`ForwarderChild` the forwarding child (`python -m receiver.runtime.forwarder`). Both
are `Child`ren (`receiver.runtime.children`): each dies with its parent, however the
parent dies, and is started again when it dies; `status()` says so meanwhile for
`/healthz`. `stop()` closes the pipe, then waits a bounded time before terminating
the child.

The handles live apart from the children's programs: the wiring starts the handles,
and each program opens its log through the wiring, so neither imports the other.
"""

from __future__ import annotations

import os
import sys

from receiver.config import FORWARDER_STATS_ENV, Config

from .children import Child

CATCHUP_STOP_WAIT = 10.0  # seconds a stopping catch-up child may take to finish its pass
DRAIN = 5.0  # seconds a stopping forwarder waits for the attempts in flight
FORWARDER_STOP_WAIT = DRAIN + 5.0  # seconds the parent gives a stopping forwarder


class _Background(Child):
    """A background child of `serve` that `/healthz` reports on."""

    def status(self) -> dict:
        """For /healthz: whether the child runs, its pid, restarts and last exit code."""
        return {
            "process": "child",
            "running": self.running,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


class Projector(_Background):
    """The parent's handle on the catch-up child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO", on_change=None):
        # `on_change(status())` whenever it changes (start, exit, restart), from
        # whichever thread changed it; `serve --workers N` shares it with its workers.
        env = config.child_env(os.environ)
        command = [sys.executable, "-m", "receiver.runtime.catchup", "--log-level", log_level]
        share = None if on_change is None else (lambda: on_change(self.status()))
        super().__init__("read-model catch-up", command, env, on_change=share)
        self.config = config

    def stop(self, timeout: float = CATCHUP_STOP_WAIT) -> None:
        """Stop the child: end of file on its pipe, then SIGTERM, then SIGKILL. Idempotent."""
        super().stop(timeout)


class ForwarderChild(_Background):
    """The parent's handle on the forwarding child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO", on_change=None):
        # `on_change(status())` whenever it changes; `serve --workers N` shares it.
        env = config.child_env(os.environ)
        if config.forwarder_stats:
            env[FORWARDER_STATS_ENV] = config.forwarder_stats
        command = [sys.executable, "-m", "receiver.runtime.forwarder", "--log-level", log_level]
        share = None if on_change is None else (lambda: on_change(self.status()))
        super().__init__("forwarder", command, env, on_change=share)

    def stop(self, timeout: float = FORWARDER_STOP_WAIT) -> None:
        """Stop the child: end of file on its pipe, then SIGTERM, then SIGKILL. Idempotent."""
        super().stop(timeout)
