"""Prometheus metrics, one registry per app so tests never share counters.

Scrape-time figures come from `store.stats()` (cheap by the store's contract), the
projections' meta rows and forwarding's per-destination counts (`destination_status`:
one count of each destination's deliveries); everything else is a counter. Forwarding
attempts are counted by the forwarding child, which writes them to a small file that
every scrape reads (`receiver.runtime.forwarder.AttemptStats`). In one process the counters
are that process's; under `serve --workers N` (PROMETHEUS_MULTIPROC_DIR set by the
supervisor, prometheus_client's multiprocess mode) every scrape sums the counters of
all its request processes since `serve` started, whichever worker answers it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

import projections
from projections import ProjectionDB
from store import EventStore

log = logging.getLogger("ikledger.metrics")

disable_created_metrics()  # the *_created series only add noise to every scrape

_APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _log_families(store: EventStore) -> list:
    """Counts of the log itself, from `stats()` (cheap by contract), so they survive restarts."""
    stats = store.stats()
    events = GaugeMetricFamily("ikledger_events", "Events in the log, by type", labels=["type"])
    for event_type, count in stats.events_by_type.items():
        events.add_metric([event_type], count)
    position = GaugeMetricFamily(
        "ikledger_log_position", "Position of the newest event", value=stats.last_position
    )
    journal = GaugeMetricFamily(
        "ikledger_journal_deliveries", "Deliveries in the journal, by outcome", labels=["outcome"]
    )
    for outcome, count in stats.deliveries.items():
        journal.add_metric([outcome], count)
    return [events, position, journal]


def _projection_families(views: ProjectionDB) -> list:
    """Each projection's lag, checkpoint and poison state, from its meta row."""
    lag = GaugeMetricFamily(
        "ikledger_projection_lag_events", "Events behind the log", labels=["projection"]
    )
    checkpoint = GaugeMetricFamily(
        "ikledger_projection_checkpoint", "Last log position applied", labels=["projection"]
    )
    failing = GaugeMetricFamily(
        "ikledger_projection_failing", "1 while stopped at a poison event", labels=["projection"]
    )
    for row in projections.projection_status(views):
        lag.add_metric([row["name"]], row["lag"])
        checkpoint.add_metric([row["name"]], row["checkpoint"])
        failing.add_metric([row["name"]], 1 if row.get("error") else 0)
    return [lag, checkpoint, failing]


def _forwarding_families(store: EventStore, stats_path: str | None) -> list:
    """Per destination: deliveries pending and failed, lag in events and the age of the
    oldest event not yet delivered (from the store); attempts by outcome and their
    latency, counted by the forwarding child since it started (its stats file)."""
    import forwarding
    from receiver.runtime.children import read_json
    from receiver.runtime.forwarder import LATENCY_BUCKETS

    label = ["destination"]
    pending = GaugeMetricFamily(
        "ikledger_forwarding_pending", "Deliveries queued, not yet acknowledged", labels=label
    )
    failed = GaugeMetricFamily(
        "ikledger_forwarding_failed", "Events given up on (replay --failed)", labels=label
    )
    lag = GaugeMetricFamily(
        "ikledger_forwarding_lag_events", "Events not yet delivered nor given up", labels=label
    )
    age = GaugeMetricFamily(
        "ikledger_forwarding_oldest_pending_seconds",
        "Age (since ikledger received it) of the oldest event not yet delivered",
        labels=label,
    )
    paused = GaugeMetricFamily("ikledger_forwarding_paused", "1 while paused", labels=label)
    for status in forwarding.list_destinations(store):
        name = [status["name"]]
        pending.add_metric(name, status["pending"])
        failed.add_metric(name, status["failed"])
        lag.add_metric(name, status["lag_events"])
        age.add_metric(name, status["lag_seconds"])
        paused.add_metric(name, 1 if status["paused"] else 0)
    families = [pending, failed, lag, age, paused]
    stats = read_json(stats_path) if stats_path else None
    if stats:
        attempts = CounterMetricFamily(
            "ikledger_forwarding_attempts",
            "Forwarding attempts by outcome (2xx…5xx or an error class), since the "
            "forwarder started",
            labels=["destination", "outcome"],
        )
        for destination, outcomes in stats["attempts"].items():
            for outcome, count in outcomes.items():
                attempts.add_metric([destination, outcome], count)
        latency = HistogramMetricFamily(
            "ikledger_forwarding_attempt_seconds",
            "Duration of forwarding attempts, since the forwarder started",
            labels=label,
        )
        for destination, seen in stats["latency"].items():
            buckets = [(str(b), n) for b, n in zip(LATENCY_BUCKETS, seen["buckets"], strict=True)]
            buckets.append(("+Inf", seen["count"]))
            latency.add_metric([destination], buckets, seen["sum"])
        families += [attempts, latency]
    return families


class _ScrapeCollector:
    """Reads the log's and the read models' state at scrape time, each source guarded.

    A source that fails (log locked, read models unreadable) is left out of that
    scrape and counted in `ikledger_collector_errors_total`: a scrape never fails.
    """

    def __init__(self, sources: dict[str, Callable[[], list]]):
        self.sources = sources
        self.errors = dict.fromkeys(sources, 0)
        self._lock = threading.Lock()

    def collect(self):
        for name, source in self.sources.items():
            try:
                families = source()
            except Exception as exc:  # noqa: BLE001 -- a scrape must answer whatever fails
                log.warning("metrics: %s collector failed (%s: %s)", name, type(exc).__name__, exc)
                with self._lock:
                    self.errors[name] += 1
                continue
            yield from families
        errors = CounterMetricFamily(
            "ikledger_collector_errors",
            "Scrapes that left out a collector because reading it failed",
            labels=["collector"],
        )
        with self._lock:
            for name, count in self.errors.items():
                errors.add_metric([name], count)
        yield errors


class Metrics:
    """The receiver's counters and histograms."""

    def __init__(
        self,
        store: EventStore,
        views: ProjectionDB | None = None,
        *,
        shared: str | None = None,
        forwarder_stats: str | None = None,
    ):
        """`shared`: prometheus_client's multiprocess folder (`Config.metrics_dir`), if any;
        `forwarder_stats`: the forwarding child's counts (`Config.forwarder_stats`), if any."""
        self.registry = CollectorRegistry()
        if shared:  # the counters live in the shared folder; the scrape sums them all
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(self.registry, path=shared)
        own = None if shared else self.registry
        self.deliveries = Counter(
            "ikledger_deliveries",
            "Webhook deliveries since start, by outcome",
            ["outcome"],
            registry=own,
        )
        self.rejections = Counter(
            "ikledger_rejections",
            "Refused deliveries since start, by error code",
            ["code"],
            registry=own,
        )
        self.append_seconds = Histogram(
            "ikledger_append_seconds",
            "Time from handing an event to the store to its durable commit",
            buckets=_APPEND_BUCKETS,
            registry=own,
        )
        sources = {
            "log": lambda: _log_families(store),
            "forwarding": lambda: _forwarding_families(store, forwarder_stats),
        }
        if views is not None:
            sources["projections"] = lambda: _projection_families(views)
        self.registry.register(_ScrapeCollector(sources))

        # Bound once: looking a child up by label costs more than incrementing it.
        self._outcomes = {
            o: self.deliveries.labels(o)
            for o in ("stored", "duplicate", "conflict", "rejected", "unavailable")
        }

    def delivery(self, outcome: str) -> None:
        child = self._outcomes.get(outcome) or self.deliveries.labels(outcome)
        child.inc()

    def rejection(self, code: str) -> None:
        self._outcomes["rejected"].inc()
        self.rejections.labels(code).inc()
