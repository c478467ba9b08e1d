"""/openapi.json describes exactly the routes the app serves, and their answers match it."""

from __future__ import annotations

import falcon.testing
import pytest
from falcon.routing import CompiledRouter

import projections
from receiver import Config, create_app
from receiver.openapi import spec
from tests.support import SECRET, payload, signed


@pytest.fixture
def app(store, tmp_path):
    views = projections.open_projections(store, tmp_path / "views.db")
    yield create_app(Config(secrets=(SECRET,)), store, views)
    views.close()


def served_routes(app) -> dict[str, set[str]]:
    router: CompiledRouter = app._router
    found: dict[str, set[str]] = {}

    def walk(nodes):
        for node in nodes:
            if node.resource is not None:
                methods = {
                    m.lower()
                    for m, responder in node.method_map.items()
                    if getattr(responder, "__name__", "") != "method_not_allowed"
                    and m not in ("OPTIONS",)
                }
                found[node.uri_template] = methods
            walk(node.children)

    walk(router._roots)
    return found


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
    import re

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
