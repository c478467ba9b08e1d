"""/openapi.json describes exactly the routes the app serves, and their answers match it."""

from __future__ import annotations

import re

import falcon.inspect
import falcon.testing
import pytest

import projections
from receiver import Config, create_app
from receiver.http.openapi import spec
from tests.support import SECRET, payload, signed


@pytest.fixture
def app(store, tmp_path):
    views = projections.open_projections(store, tmp_path / "views.db")
    yield create_app(Config(secrets=(SECRET,)), store, views)
    views.close()


def served_routes(app) -> dict[str, set[str]]:
    """Each route's template and the methods its resource answers (Falcon's own inspection)."""
    return {
        route.path: {m.method.lower() for m in route.methods if not m.internal}
        for route in falcon.inspect.inspect_routes(app)
    }


def test_spec_documents_every_route_and_method(app):
    documented = {path: set(ops) for path, ops in spec()["paths"].items()}
    assert documented == served_routes(app)


def test_spec_is_served_and_is_openapi_31(app):
    client = falcon.testing.TestClient(app)
    served = client.simulate_get("/openapi.json").json
    assert served["openapi"].startswith("3.1") and served == spec()


def test_every_referenced_schema_exists():
    document = spec()
    text = str(document)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in document["components"]["schemas"], name


def test_documented_required_fields_appear_in_real_answers(app):
    client = falcon.testing.TestClient(app)
    body = payload("video.transformation.ready")
    receipt = client.simulate_post("/webhook", body=body, headers=signed(body)).json
    schemas = spec()["components"]["schemas"]
    assert set(schemas["Receipt"]["required"]) <= set(receipt)
    error = client.simulate_post(
        "/webhook", body=b"{}", headers={"content-type": "application/json"}
    ).json
    assert set(schemas["Error"]["required"]) <= set(error)
    health = client.simulate_get("/healthz").json
    assert set(schemas["Health"]["required"]) <= set(health)
    page = client.simulate_get("/events").json
    assert set(schemas["EventPage"]["required"]) <= set(page)
    assert set(schemas["EventSummary"]["required"]) <= set(page["events"][0])


def test_every_operation_documents_its_failure_answers():
    for path, operations in spec()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            if path not in ("/metrics", "/openapi.json"):
                assert "Retry-After" in responses["503"]["headers"], (method, path)


def test_a_real_503_matches_the_documented_one(app, store):
    store.close()
    response = falcon.testing.TestClient(app).simulate_get("/events")
    documented = spec()["paths"]["/events"]["get"]["responses"]["503"]
    assert response.status_code == 503
    assert {name.lower() for name in documented["headers"]} <= set(response.headers)
    assert response.json["code"] in documented["description"]
    assert set(spec()["components"]["schemas"]["Error"]["required"]) <= set(response.json)


def test_stats_percentiles_state_their_error_bound():
    """GET /stats answers percentiles from a histogram: the spec says how far off they may be."""
    schemas = spec()["components"]["schemas"]
    for name in ("Stats", "Percentiles"):
        assert "within 1 %" in schemas[name]["description"], name
