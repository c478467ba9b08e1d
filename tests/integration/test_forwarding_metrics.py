"""/metrics per destination (pending, failed, lag, oldest pending, attempts by outcome,
latency) and /healthz naming the failing destinations while it stays ok."""

from __future__ import annotations

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

import projections
from receiver import Config, create_app
from receiver.runtime.children import write_json
from receiver.runtime.forwarder import AttemptStats
from tests.forwarding_fixtures import one_delivered_one_failed
from tests.support import SECRET, new_event


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


def samples(client) -> dict[tuple[str, tuple], float]:
    text = client.simulate_get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_per_destination(store, views, tmp_path):
    store.append_many([new_event("evt-1"), new_event("evt-2"), new_event("evt-3")])
    one_delivered_one_failed(store)
    stats = AttemptStats()
    for attempt in store.forwarding().attempts(destination="app"):
        stats.observe(attempt)
    path = tmp_path / "attempts.json"
    write_json(str(path), stats.snapshot())
    app = create_app(Config(secrets=(SECRET,), forwarder_stats=str(path)), store, views)
    found = samples(falcon.testing.TestClient(app))
    app_label = (("destination", "app"),)
    assert found[("ikledger_forwarding_pending", app_label)] == 0
    assert found[("ikledger_forwarding_failed", app_label)] == 1
    assert found[("ikledger_forwarding_lag_events", app_label)] == 1  # evt-3, not yet read
    assert found[("ikledger_forwarding_oldest_pending_seconds", app_label)] >= 0
    outcome = (("destination", "app"), ("outcome", "{}"))
    for kind, count in (("2xx", 1), ("5xx", 1), ("connection_refused", 1)):
        key = tuple((k, v.format(kind)) for k, v in outcome)
        assert found[("ikledger_forwarding_attempts_total", key)] == count
    assert found[("ikledger_forwarding_attempt_seconds_count", app_label)] == 3
    bucket = (("destination", "app"), ("le", "0.025"))
    assert found[("ikledger_forwarding_attempt_seconds_bucket", bucket)] == 3  # 12 ms each


def test_healthz_stays_ok_and_names_the_failing_destinations(store, views):
    store.append_many([new_event("evt-1"), new_event("evt-2")])
    client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
    assert "failing_destinations" not in client.simulate_get("/healthz").json
    one_delivered_one_failed(store)
    health = client.simulate_get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "ok" and health.json["failing_destinations"] == ["app"]
