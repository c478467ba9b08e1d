"""The forwarding child's attempt counts, which `/metrics` reads.

The child counts its attempts by destination, outcome and latency (`AttemptStats`)
and writes them (`write_stats`) to the small file `Config.forwarder_stats`;
`receiver.http.metrics` reads that file, bucketed by `LATENCY_BUCKETS`.
"""

from __future__ import annotations

import logging
import threading

from .children import write_json

log = logging.getLogger("ikledger.forwarder")

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


def write_stats(stats: AttemptStats, path: str, stop: threading.Event) -> None:
    """Write `stats.snapshot()` to `path` when it changed, every `STATS_EVERY` s, till `stop`."""
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
