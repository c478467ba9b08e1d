"""Forwarding in a child process of `ikledger serve`.

`ForwarderChild(config).start()` runs `python -m receiver.runtime.forwarder` on the same
log: `forwarding.run`, one forwarder thread per destination that is not paused, each
holding its destination's lease (so several receivers of one log forward each
destination once). Ingest never waits on it and a fault in it never fails a webhook:
it is another process, sharing only the database.

Like the catch-up child (`receiver.runtime.catchup`), it dies with its parent however
the parent dies and is restarted when it dies (`receiver.runtime.children`). Stopping
lets the attempts in flight finish for at most `DRAIN` seconds; an attempt cut short
is made again by the next forwarder (at least once). It counts its attempts by outcome
and latency (`AttemptStats`) into the small file `Config.forwarder_stats` that
`/metrics` reads.

Run by hand (`python -m receiver.runtime.forwarder`, no `--parent-fd`) it forwards until
SIGTERM or Ctrl-C: the forwarder of a deployment whose requests a WSGI server of its
own answers (`get_app()` does not forward).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from receiver import logs
from receiver.config import FORWARDER_STATS_ENV, Config

from .children import Child, wait_for_parent_exit, write_json

log = logging.getLogger("ikledger.forwarder")

DRAIN = 5.0  # seconds a stopping forwarder waits for the attempts in flight
STOP_WAIT = DRAIN + 5.0  # seconds the parent gives a stopping child before SIGTERM
STATS_EVERY = 1.0  # seconds between two writes of the attempt counts
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def outcome_of(status: int | None, error: str | None) -> str:
    """An attempt's outcome label: `2xx` … `5xx` by its status, else its error class."""
    if status is not None:
        return f"{status // 100}xx"
    return error or "unknown"


class AttemptStats:
    """Attempts by destination and outcome, and their latency, since this process started.

    The forwarding child counts here (`observe`, from its forwarder threads) and writes
    `snapshot()` to `Config.forwarder_stats`, which `/metrics` reads (a restarted child
    starts from 0: a counter reset, which Prometheus' rate() expects).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._attempts: dict[str, dict[str, int]] = {}
        self._latency: dict[str, dict] = {}
        self.changes = 0

    def observe(self, attempt) -> None:
        seconds = attempt.duration_ms / 1000
        outcome = outcome_of(attempt.status, attempt.error)
        with self._lock:
            by_outcome = self._attempts.setdefault(attempt.destination, {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
            latency = self._latency.setdefault(
                attempt.destination, {"buckets": [0] * len(LATENCY_BUCKETS), "count": 0, "sum": 0.0}
            )
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    latency["buckets"][index] += 1  # cumulative, as Prometheus counts
            latency["count"] += 1
            latency["sum"] += seconds
            self.changes += 1

    def snapshot(self) -> dict:
        """{"attempts": {destination: {outcome: n}}, "latency": {destination: {"buckets":
        [cumulative count per LATENCY_BUCKETS bound], "count", "sum"}}}."""
        with self._lock:
            return {
                "attempts": {d: dict(o) for d, o in self._attempts.items()},
                "latency": {
                    d: {**v, "buckets": list(v["buckets"])} for d, v in self._latency.items()
                },
            }


def _write_stats(stats: AttemptStats, path: str, stop: threading.Event) -> None:
    written = -1
    while True:
        if stats.changes != written:
            written = stats.changes
            try:
                write_json(path, stats.snapshot())
            except OSError as exc:
                log.warning("cannot write the attempt counts to %s: %s", path, exc)
        if stop.wait(STATS_EVERY):
            return


def settings(config: Config):
    """The forwarders' settings from the configuration."""
    import forwarding

    return forwarding.Settings(
        imagekit_secrets=config.secrets, lease_ttl=config.forward_lease_ttl, drain=DRAIN
    )


class ForwarderChild(Child):
    """The parent's handle on the forwarding child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO", on_change=None):
        # `on_change(status())` whenever it changes; `serve --workers N` shares it.
        env = config.child_env(os.environ)
        if config.forwarder_stats:
            env[FORWARDER_STATS_ENV] = config.forwarder_stats
        command = [sys.executable, "-m", "receiver.runtime.forwarder", "--log-level", log_level]
        share = None if on_change is None else (lambda: on_change(self.status()))
        super().__init__("forwarder", command, env, on_change=share)

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


def main(argv: list[str] | None = None) -> int:
    """Forward until the parent exits (or SIGTERM, or Ctrl-C without a parent)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.forwarder")
    parser.add_argument("--parent-fd", type=int)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    config = Config.from_env()
    logs.configure(args.log_level, config.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.parent_fd is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C stops the parent, then us
    else:
        signal.signal(signal.SIGINT, lambda *_: stop.set())

    import forwarding

    from .wiring import open_log_store

    store = open_log_store(config)
    stats = AttemptStats()
    try:
        loop = threading.Thread(
            target=forwarding.run,
            args=(store, stop),
            kwargs={"settings": settings(config), "on_attempt": stats.observe},
            name="ikledger-forwarding",
        )
        loop.start()
        if config.forwarder_stats:
            threading.Thread(
                target=_write_stats,
                args=(stats, config.forwarder_stats, stop),
                name="ikledger-forwarding-stats",
                daemon=True,
            ).start()
        if args.parent_fd is not None:
            watcher = threading.Thread(
                target=lambda: (wait_for_parent_exit(args.parent_fd, args.parent_pid), stop.set()),
                name="ikledger-parent",
                daemon=True,
            )
            watcher.start()
        while not stop.wait(1.0):
            if not loop.is_alive():
                log.error("forwarding stopped unexpectedly")
                return 1
        loop.join(STOP_WAIT)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
