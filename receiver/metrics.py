"""Prometheus metrics, one registry per app so tests never share counters."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from store import EventStore, StoreError

disable_created_metrics()  # the *_created series only add noise to every scrape

_APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _LogCollector:
    """Reads the log's own counts at scrape time, so they survive restarts."""

    def __init__(self, store: EventStore, extra: Callable[[], list] | None):
        self.store = store
        self.extra = extra

    def collect(self):
        try:
            stats = self.store.stats()
        except StoreError:
            return
        events = GaugeMetricFamily("ikledger_events", "Events in the log, by type", labels=["type"])
        for event_type, count in stats.events_by_type.items():
            events.add_metric([event_type], count)
        yield events
        yield GaugeMetricFamily(
            "ikledger_log_position", "Position of the newest event", value=stats.last_position
        )
        journal = GaugeMetricFamily(
            "ikledger_journal_deliveries",
            "Deliveries in the journal, by outcome",
            labels=["outcome"],
        )
        for outcome, count in stats.deliveries.items():
            journal.add_metric([outcome], count)
        yield journal
        if self.extra is not None:
            yield from self.extra()


class Metrics:
    """The receiver's counters and histograms."""

    def __init__(self, store: EventStore, extra: Callable[[], list] | None = None):
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "ikledger_deliveries",
            "Webhook deliveries since start, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "ikledger_rejections",
            "Refused deliveries since start, by error code",
            ["code"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "ikledger_append_seconds",
            "Time from handing an event to the store to its durable commit",
            buckets=_APPEND_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LogCollector(store, extra))

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
