"""The Destinations page, its Retry failed action, and the event page's forwarding
attempts, over the app without a browser (falcon.testing)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import falcon.testing
import pytest

import projections
from receiver.config import Config
from receiver.http.app import create_app
from receiver.ui.auth import COOKIE
from tests.forwarding_fixtures import SECRET, one_delivered_one_failed
from tests.support import SECRET as IMAGEKIT_SECRET
from tests.support import new_event


@pytest.fixture
def client(store, tmp_path):
    views = projections.open_projections(store, tmp_path / "views.db")
    app = create_app(Config(secrets=(IMAGEKIT_SECRET,)), store, views)
    yield falcon.testing.TestClient(app)
    views.close()


@pytest.fixture
def forwarded(store):
    store.append_many([new_event("evt-1"), new_event("evt-2")])
    return one_delivered_one_failed(store)


def session(client, path: str) -> tuple[str, str]:
    """The session cookie and CSRF token a GET of `path` hands out."""
    page = client.simulate_get(path)
    return page.cookies[COOKIE].value, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def post_form(client, path: str, cookie: str, form: dict):
    return client.simulate_post(
        path,
        body=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"{COOKIE}={cookie}",
        },
    )


def test_the_page_shows_state_lag_counts_last_failure_and_failed_events(client, forwarded):
    page = client.simulate_get("/ui/destinations")
    assert page.status_code == 200
    text = page.text
    assert 'href="/ui/destinations" aria-current="page"' in text  # in the nav
    assert "http://127.0.0.1:9/hook" in text and "hunter2" not in text and SECRET[6:] not in text
    assert "status-failing" in text
    assert "connection_refused; given up after attempt 2" in text
    assert f"/ui/event?id={forwarded[1]}" in text and "Retry failed" in text


def test_retry_failed_queues_them_again_behind_csrf(client, store, forwarded):
    cookie, csrf = session(client, "/ui/destinations")
    refused = post_form(client, "/ui/destinations/retry", cookie, {"name": "app", "csrf": "x"})
    assert refused.status_code == 403
    assert store.forwarding().counts("app")["failed"] == 1
    done = post_form(client, "/ui/destinations/retry", cookie, {"name": "app", "csrf": csrf})
    assert done.status_code == 303
    assert done.headers["location"].startswith("/ui/destinations?retried=app&queued=1")
    assert store.forwarding().counts("app") == {"pending": 1, "delivered": 1, "failed": 0}
    shown = client.simulate_get(done.headers["location"].split("#")[0])
    assert "Queued 1 failed events of app again." in shown.text


def test_retry_of_an_unknown_destination_is_a_400_page(client, forwarded):
    cookie, csrf = session(client, "/ui/destinations")
    answer = post_form(client, "/ui/destinations/retry", cookie, {"name": "nobody", "csrf": csrf})
    assert answer.status_code == 400 and "no destination named" in answer.text


def test_the_event_page_lists_the_forwarding_attempts(client, forwarded):
    text = client.simulate_get("/ui/event", params={"id": forwarded[1]}).text
    assert "Forwarding attempts" in text
    rows = re.findall(r"<tr><td class=\"mono\">.*?</tr>", text, re.DOTALL)
    attempts = [r for r in rows if "/ui/destinations#destination-app" in r]
    assert len(attempts) == 2
    assert "connection_refused" in attempts[0] and "HTTP 500" in attempts[1]
