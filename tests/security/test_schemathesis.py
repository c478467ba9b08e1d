"""Schemathesis against the served /openapi.json of a real `ikledger serve`.

Every operation gets generated (and deliberately invalid) requests; every answer
must be no 5xx, a documented status, the documented content type, headers and
schema. Bounded so the whole run stays in seconds.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from receiver.http.openapi import spec
from receiver.ui.auth import COOKIE
from tests.security.helpers import signed_in
from tests.support import payload, payload_names, serve, signed

TOKEN = "schemathesis-read-token"
# Cursors are opaque and times are ISO-8601 text: JSON Schema cannot say which strings
# are valid ones, so a schema-valid string may get the documented 400 invalid_query.
EXCLUDED = [checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("schemathesis") / "ikledger.db"
    with serve(db, env={"IKLEDGER_READ_TOKEN": TOKEN}) as server:
        for name in payload_names():
            body = payload(name)
            response = httpx.post(f"{server.base}/webhook", content=body, headers=signed(body))
            assert response.status_code == 200
        server.session = signed_in(server.base, TOKEN)
        yield server
    assert "Traceback" not in server.log_text(), server.log_text()


def operations(document_url: str) -> list:
    loaded = schemathesis.openapi.from_url(document_url)
    return [result.ok() for result in loaded.get_all_operations()]


# schemathesis' own pytest integration (`from_fixture`) does not run under pytest 9,
# so each operation's strategy is driven by hypothesis directly.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_description(served, mode):
    found = operations(f"{served.base}/openapi.json")
    # Schemathesis leaves out the document's own path (GET /openapi.json).
    assert {op.label.split(" ")[1] for op in found} == set(spec()["paths"]) - {"/openapi.json"}
    unsatisfiable = []
    answered: dict[str, set[int]] = defaultdict(set)
    for operation in found:
        inputs = (operation.query, operation.headers, operation.path_parameters, operation.body)
        if mode is GenerationMode.NEGATIVE and not any(len(part) for part in inputs):
            continue  # nothing to make invalid (e.g. GET /healthz)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            response = case.call_and_validate(
                base_url=served.base,
                # The read token for the API, a session for the pages (else every
                # page answers only its redirect to /ui/login).
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Cookie": f"{COOKIE}={served.session}",
                },
                excluded_checks=EXCLUDED,
                timeout=10,
            )
            answered[case.operation.label].add(response.status_code)

        try:
            conforms()
        except Unsatisfiable:
            unsatisfiable.append(operation.label)
    # Any string is a valid path id: there is no invalid value of it to generate.
    assert set(unsatisfiable) <= {
        "GET /events/{event_id}",
        "GET /events/{event_id}/body",
        "GET /events/{event_id}/proof",
        "GET /destinations/{name}",
    }
    # The pages were reached, not only their redirect to the login page.
    pages = {label for label in answered if label.startswith("GET /ui") and "login" not in label}
    if mode is GenerationMode.POSITIVE:
        described = {
            f"GET {path}"
            for path, operations in spec()["paths"].items()
            if path.startswith("/ui") and "get" in operations and "login" not in path
        }
        assert pages == described
    redirected_only = sorted(label for label in pages if answered[label] == {303})
    assert redirected_only == []
