"""Read token, loopback-only binding, secret rotation, and no secret in any output."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import falcon.testing
import httpx
import pytest

import projections
import receiver
from receiver import Config, create_app
from tests.support import SECRET, event_body, invoke_cli, payload, serve, signed

TOKEN = "tok_9f2c41d07be34a5e8c6d"
NEW_SECRET = "whsec_bmV3IHNlY3JldCBhZnRlciByb3RhdGlvbg=="
STRANGER = "whsec_c29tZW9uZSBlbHNlJ3Mgc2VjcmV0"
QUERY_ROUTES = ("/timeline?asset={asset}", "/assets", "/transformations", "/events")
ASSET = "https://ik.imagekit.io/demo/sample-video.mp4"


@pytest.fixture
def guarded(store, tmp_path):
    views = projections.open_projections(store, tmp_path / "views.db")
    client = falcon.testing.TestClient(
        create_app(Config(secrets=(SECRET,), read_token=TOKEN), store, views)
    )
    body = payload("video.transformation.accepted")
    assert client.simulate_post("/webhook", body=body, headers=signed(body)).status_code == 200
    projections.ProjectionRunner(views).catch_up()
    yield client, json.loads(body)["id"]
    views.close()


WRONG = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN.upper()}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer  {TOKEN}"},
    {"X-Read-Token": TOKEN},
]


@pytest.mark.parametrize("headers", WRONG, ids=[str(i) for i in range(len(WRONG))])
def test_missing_or_wrong_token_is_refused_and_reveals_nothing(guarded, headers):
    client, event_id = guarded
    paths = [p.format(asset=ASSET) for p in QUERY_ROUTES]
    paths += [f"/events/{event_id}", f"/events/{event_id}/body", f"/events?token={TOKEN}"]
    for path in paths:
        response = client.simulate_get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json["code"] == "token_required"
        assert response.headers["www-authenticate"] == "Bearer"
        assert event_id not in response.text and "sample-video" not in response.text
        assert TOKEN not in response.text


def test_right_token_opens_every_query_route(guarded):
    client, event_id = guarded
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in [p.format(asset=ASSET) for p in QUERY_ROUTES] + [f"/events/{event_id}"]:
        assert client.simulate_get(path, headers=headers).status_code in (200, 404), path
    assert client.simulate_get(f"/events/{event_id}", headers=headers).json["id"] == event_id


# Names that hold a secret or something derived from one (a MAC, a signature, a CSRF
# value): an `==` or `!=` on any of them leaks through its timing how much matched.
SECRET_NAMES = re.compile(
    r"token|mac|sig|csrf|secret|expected|offered|digest|password", re.IGNORECASE
)


def equality_on_secrets(source: str) -> list[str]:
    """Every `==`/`!=` of `source` whose operands name a secret, as source text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        names = {
            name.id if isinstance(name, ast.Name) else name.attr
            for operand in (node.left, *node.comparators)
            for name in ast.walk(operand)
            if isinstance(name, ast.Name | ast.Attribute)
        }
        if any(SECRET_NAMES.search(name) for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_equality_on_secrets_is_found():
    assert equality_on_secrets("if mac != self._mac(payload):\n    pass") != []
    assert equality_on_secrets("ok = offered.encode() == token.encode()") != []
    assert equality_on_secrets("ok = hmac.compare_digest(offered, token)") == []


def test_secrets_are_compared_only_in_constant_time():
    """The read token, session MACs, CSRF values and signatures: never `==` or `!=`."""
    root = Path(receiver.__file__).parent
    found = {
        str(path.relative_to(root)): lines
        for path in sorted(root.rglob("*.py"))
        if (lines := equality_on_secrets(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "0", "example.com", ""])
def test_serve_refuses_a_non_loopback_bind_without_read_token(db_path, host):
    result = invoke_cli(
        "serve", "--host", host, db=db_path, env={"IMAGEKIT_WEBHOOK_SECRET": SECRET}
    )
    assert result.returncode == 2
    assert b"IKLEDGER_READ_TOKEN" in result.stderr and b"Traceback" not in result.stderr
    assert not db_path.exists()  # refused before anything was opened


def test_rotation_accepts_both_secrets_then_only_the_new_one(store):
    both = falcon.testing.TestClient(create_app(Config(secrets=(SECRET, NEW_SECRET)), store))
    for secret in (SECRET, NEW_SECRET):
        for scheme in ("standard", "legacy"):
            body = event_body()
            response = both.simulate_post(
                "/webhook", body=body, headers=signed(body, scheme=scheme, secret=secret)
            )
            assert response.status_code == 200, (secret[:8], scheme)

    rotated = falcon.testing.TestClient(create_app(Config(secrets=(NEW_SECRET,)), store))
    for scheme in ("standard", "legacy"):
        body = event_body()
        old = rotated.simulate_post(
            "/webhook", body=body, headers=signed(body, scheme=scheme, secret=SECRET)
        )
        assert old.status_code == 401 and old.json["code"] == "signature_invalid"
        new = rotated.simulate_post(
            "/webhook", body=body, headers=signed(body, scheme=scheme, secret=NEW_SECRET)
        )
        assert new.status_code == 200
    assert store.last_position() == 6


def test_rotation_is_read_from_the_environment_by_a_live_server(tmp_path):
    with serve(
        tmp_path / "rot.db", env={"IMAGEKIT_WEBHOOK_SECRET": f"{SECRET}, {NEW_SECRET}"}
    ) as s:
        for secret in (SECRET, NEW_SECRET):
            body = event_body()
            headers = signed(body, secret=secret)
            assert httpx.post(f"{s.base}/webhook", content=body, headers=headers).status_code == 200
    with serve(tmp_path / "rot.db", env={"IMAGEKIT_WEBHOOK_SECRET": NEW_SECRET}) as s:
        body = event_body()
        old = httpx.post(f"{s.base}/webhook", content=body, headers=signed(body, secret=SECRET))
        assert old.status_code == 401
        new = httpx.post(f"{s.base}/webhook", content=body, headers=signed(body, secret=NEW_SECRET))
        assert new.status_code == 200


def _signature_values(headers: dict) -> list[str]:
    """Every secret-derived value a request carried: base64 and hex HMACs."""
    values = []
    for name in ("webhook-signature", "x-ik-signature"):
        if name in headers:
            values += re.findall(r"v[0-9][,=]([A-Za-z0-9+/=]{20,})", headers[name])
    return values


def _exercise(base: str, sent: list[str], answers: list[str]) -> None:
    """Every route, valid and failing, recording each signature sent and each answer."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=10) as http:

        def post(body, headers):
            sent.extend(_signature_values(headers))
            response = http.post("/webhook", content=body, headers=headers)
            answers.append(response.text)
            answers.extend(f"{k}: {v}" for k, v in response.headers.items())
            return response

        for scheme in ("standard", "legacy"):
            body = payload("video.transformation.accepted")
            assert post(body, signed(body, scheme=scheme)).status_code == 200
            body = event_body()
            tampered = signed(body, scheme=scheme)
            assert post(body + b" ", tampered).status_code == 401
            assert post(body, signed(body, scheme=scheme, secret=STRANGER)).status_code == 401
            assert post(body, signed(body, scheme=scheme, now=0)).status_code == 401
            assert post(b"{nope", signed(b"{nope", scheme=scheme)).status_code == 400
        body = event_body()
        headers = signed(body)
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
        assert post(body, headers).status_code == 401
        headers = signed(body)
        headers["webhook-signature"] += "garbage"
        assert post(body, headers).status_code == 401
        for path in ("/assets", "/transformations", "/events", f"/timeline?asset={ASSET}"):
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, auth):
                response = http.get(path, headers=headers)
                answers.append(response.text)
                answers.extend(f"{k}: {v}" for k, v in response.headers.items())
        for path in ("/healthz", "/metrics", "/openapi.json", "/nope", "/events/nope"):
            answers.append(http.get(path, headers=auth).text)
        answers.append(http.get("/timeline", headers=auth).text)  # missing parameter


def test_no_log_line_error_or_metric_contains_a_secret_token_or_signature(tmp_path):
    sent: list[str] = []
    answers: list[str] = []
    env = {"IKLEDGER_READ_TOKEN": TOKEN, "IMAGEKIT_WEBHOOK_SECRET": f"{SECRET},{NEW_SECRET}"}
    with serve(tmp_path / "leak.db", env=env, args=("--log-level", "debug")) as server:
        _exercise(server.base, sent, answers)
        metrics = httpx.get(f"{server.base}/metrics").text
    output = server.log_text()
    assert "POST /webhook 401" in output and "GET /events 401" in output  # it did log
    assert len(sent) >= 12
    forbidden = [SECRET, NEW_SECRET, SECRET.removeprefix("whsec_"), TOKEN, *sent]
    for where, text in (("server output", output), ("metrics", metrics)):
        for value in forbidden:
            assert value not in text, f"{value[:12]}… in {where}"
    for answer in answers:
        for value in forbidden:
            assert value not in answer, f"{value[:12]}… in an answer"


def test_no_python_log_record_contains_a_secret_token_or_signature(store, tmp_path, caplog):
    views = projections.open_projections(store, tmp_path / "views.db")
    app = create_app(Config(secrets=(SECRET,), read_token=TOKEN), store, views)
    client = falcon.testing.TestClient(app)
    sent = []
    caplog.set_level(logging.DEBUG)
    for scheme in ("standard", "legacy"):
        body = event_body()
        headers = signed(body, scheme=scheme)
        sent += _signature_values(headers)
        client.simulate_post("/webhook", body=body, headers=headers)
        client.simulate_post("/webhook", body=body + b"x", headers=headers)
        client.simulate_post("/webhook", body=b"[", headers=signed(b"[", scheme=scheme))
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer no"}):
        client.simulate_get("/events", headers=headers)
        client.simulate_get("/timeline", headers=headers)
    views.close()
    text = "\n".join(
        record.getMessage() + repr(record.args) + str(record.exc_info) for record in caplog.records
    )
    assert "POST /webhook" in text
    for value in (SECRET, TOKEN, *sent):
        assert value not in text
