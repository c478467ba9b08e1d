"""`get_app()` under another WSGI server: the guards `serve` has, where it can know."""

from __future__ import annotations

import re

import falcon.testing
import pytest

import projections
from receiver.config import Config, ConfigError
from receiver.http.app import create_app
from receiver.runtime.wiring import get_app, guarded, open_runtime
from receiver.ui.auth import COOKIE
from tests.support import SECRET


@pytest.fixture
def config(tmp_path):
    return Config(secrets=(SECRET,), db=str(tmp_path / "log.db"))


@pytest.fixture
def runtime(config):
    opened = open_runtime(config, catch_up=None)
    yield opened
    opened.close()


def test_get_app_refuses_to_run_without_a_webhook_secret(tmp_path):
    with pytest.raises(ConfigError, match="IMAGEKIT_WEBHOOK_SECRET"):
        get_app(Config(db=str(tmp_path / "log.db")))
    assert not (tmp_path / "log.db").exists()  # refused before opening anything


@pytest.mark.parametrize("path", ["/assets", "/events", "/ui", "/ui/log"])
def test_without_a_token_the_query_api_and_pages_answer_only_loopback(runtime, path):
    client = falcon.testing.TestClient(guarded(runtime))
    refused = client.simulate_get(path, remote_addr="203.0.113.7")
    assert refused.status_code == 403 and refused.json["code"] == "token_required"
    assert client.simulate_get(path, remote_addr="127.0.0.1").status_code in (200, 303)
    assert client.simulate_get(path, remote_addr="::1").status_code in (200, 303)


def test_without_a_token_the_webhook_and_probes_stay_open(runtime):
    client = falcon.testing.TestClient(guarded(runtime))
    assert client.simulate_get("/healthz", remote_addr="203.0.113.7").status_code == 200
    unsigned = client.simulate_post(
        "/webhook", body=b"{}", remote_addr="203.0.113.7", content_type="application/json"
    )
    assert unsigned.json["code"] == "signature_missing"  # the webhook answers, not the guard


def test_with_a_token_nothing_is_refused_by_address(config):
    with_token = Config(**{**config.__dict__, "read_token": "t0ken"})
    opened = open_runtime(with_token, catch_up=None)
    try:
        client = falcon.testing.TestClient(guarded(opened))
        answer = client.simulate_get(
            "/assets", remote_addr="203.0.113.7", headers={"Authorization": "Bearer t0ken"}
        )
        assert answer.status_code == 200
    finally:
        opened.close()


def test_two_apps_from_one_config_accept_each_others_csrf_tokens(runtime, config):
    # Two processes of one deployment (gunicorn workers, say) each build the app: a
    # form served by one is accepted by the other, with no read token configured.
    one = falcon.testing.TestClient(runtime.app)
    views = projections.open_projections(runtime.store, config.projections_path())
    try:
        other = falcon.testing.TestClient(create_app(config, runtime.store, views))
        page = one.simulate_get("/ui/log")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cookie = {"Cookie": f"{COOKIE}={page.cookies[COOKIE].value}"}
        answer = other.simulate_post("/ui/log/verify", body=f"csrf={csrf}", headers=form | cookie)
        assert answer.status_code == 303
        stranger = one.simulate_get("/ui/log").cookies[COOKIE].value  # another session's token
        forged = {"Cookie": f"{COOKIE}={stranger}"}
        refused = other.simulate_post("/ui/log/verify", body=f"csrf={csrf}", headers=form | forged)
        assert refused.status_code == 403
    finally:
        views.close()
