"""Sessions and CSRF of the pages over plain HTTP (no browser), and `timeline --svg`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import falcon.testing
import httpx
import pytest

import projections
from receiver.config import Config
from receiver.http.app import create_app
from receiver.ui.auth import COOKIE, Sessions
from store import open_store
from tests.support import invoke_cli

from .conftest import CLIP, EXPECTED_STATUS, TOKEN


def test_a_session_is_signed_kind_bound_and_expires():
    now = [1_000_000.0]
    sessions = Sessions(TOKEN, clock=lambda: now[0], lifetime=60)
    cookie = sessions.issue("a")
    assert sessions.kind(cookie) == "a"
    expires, kind, nonce, mac = cookie.split(".")
    assert sessions.kind(f"{expires}.p.{nonce}.{mac}") is None  # kind is signed
    assert sessions.kind(f"{int(expires) + 999}.{kind}.{nonce}.{mac}") is None  # so is expiry
    assert Sessions("another token").kind(cookie) is None  # a new token ends every session
    assert sessions.csrf_ok(cookie, sessions.csrf(cookie))
    assert not sessions.csrf_ok(cookie, sessions.csrf(sessions.issue("a")))
    now[0] += 61
    assert sessions.kind(cookie) is None


@contextmanager
def _login(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        page = client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post("/ui/login", data={"csrf": csrf, "token": TOKEN, "next": "/ui/log"})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/log"
        yield client


def test_login_cookie_flags(ledger):
    with _login(ledger.base) as client:
        assert client.get("/ui/log").status_code == 200
    with httpx.Client(base_url=ledger.base, timeout=10) as client:
        set_cookie = client.get("/ui/login").headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Secure" not in set_cookie  # plain http


@pytest.mark.parametrize(
    ("protocol", "headers"), [("https", {}), ("http", {"X-Forwarded-Proto": "https"})]
)
def test_the_cookie_is_secure_behind_https(tmp_path, protocol, headers):
    # waitress drops X-Forwarded-Proto unless the proxy is trusted (then it sets the
    # scheme): both forms reach the app, so both are checked on the app itself.
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    try:
        app = create_app(Config(secrets=("s",), read_token=TOKEN), store, views)
        answer = falcon.testing.TestClient(app).simulate_get(
            "/ui/login", protocol=protocol, headers=headers
        )
        assert "Secure" in answer.headers["set-cookie"]
    finally:
        views.close()
        store.close()


def test_a_tampered_cookie_is_sent_to_the_login_page(ledger):
    with _login(ledger.base) as client:
        good = client.cookies[COOKIE]
        client.cookies.clear()
        client.cookies.set(COOKIE, good[:-1] + ("0" if good[-1] != "0" else "1"))
        answer = client.get("/ui/event?id=ev-a1")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_a_cross_site_post_is_refused_even_with_the_token(ledger, origin):
    with _login(ledger.base) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/log").text).group(1)
        answer = client.post("/ui/log/verify", data={"csrf": csrf}, headers={"Origin": origin})
        assert answer.status_code == 403
        ok = client.post("/ui/log/verify", data={"csrf": csrf}, headers={"Origin": ledger.base})
        assert ok.status_code == 303


def test_login_redirects_only_within_the_site(ledger):
    with httpx.Client(base_url=ledger.base, follow_redirects=False, timeout=10) as client:
        page = client.get("/ui/login", params={"next": "//evil.example/x"})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert 'name="next" value="/ui"' in page.text
        answer = client.post(
            "/ui/login", data={"csrf": csrf, "token": TOKEN, "next": "https://evil.example/"}
        )
        assert answer.headers["location"] == "/ui"


def test_timeline_svg_file_is_the_same_picture(ledger, tmp_path):
    out = tmp_path / "clip.svg"
    db = ledger.db
    done = invoke_cli("timeline", CLIP, "--svg", str(out), db=db)
    assert done.returncode == 0, done.stderr
    assert CLIP.encode() in done.stdout  # the table is still printed
    root = ET.fromstring(out.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    rows = {
        g.get("data-request-id"): g.get("data-status")
        for g in root.iter(f"{ns}g")
        if g.get("data-request-id")
    }
    assert rows == EXPECTED_STATUS
    assert root.find(f"{ns}style") is not None
    printed = invoke_cli("timeline", CLIP, "--svg", "-", db=db)
    assert printed.stdout.decode().startswith("<svg")
    missing = invoke_cli(
        "timeline", "https://nowhere.example/x.mp4", "--svg", str(tmp_path / "n.svg"), db=db
    )
    assert missing.returncode != 0 and not (tmp_path / "n.svg").exists()


@pytest.mark.parametrize(
    "cookie", ["9999999999.a.n.\u00e9", "1.p.n.\u00ff\u00ff", "9999999999.a.ñ.ü"]
)
def test_a_cookie_of_non_ascii_bytes_is_no_session(cookie):
    sessions = Sessions(TOKEN)
    assert sessions.kind(cookie) is None


def test_a_page_with_a_non_ascii_cookie_sends_to_the_login_page(tmp_path):
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    try:
        app = create_app(Config(secrets=("s",), read_token=TOKEN), store, views)
        raw = f"{COOKIE}=1.a.n.\u00e9\u00e9".encode("latin-1")
        answer = falcon.testing.TestClient(app).simulate_get(
            "/ui", headers={"Cookie": raw.decode("latin-1")}
        )
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    finally:
        views.close()
        store.close()


class _Browser:
    """One visitor's cookie jar over falcon.testing clients (one per request worker)."""

    def __init__(self, addr: str = "127.0.0.1"):
        self.cookie: str | None = None
        self.addr = addr

    def get(self, app, path: str):
        answer = falcon.testing.TestClient(app).simulate_get(
            path, headers=self._headers(), remote_addr=self.addr
        )
        self._keep(answer)
        return answer

    def post(self, app, path: str, form: dict):
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.get(app, "/ui/login").text)
        body = urlencode({**form, "csrf": csrf.group(1) if csrf else ""})
        headers = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
        answer = falcon.testing.TestClient(app).simulate_post(
            path, body=body, headers=headers, remote_addr=self.addr
        )
        self._keep(answer)
        return answer

    def _headers(self) -> dict:
        return {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}

    def _keep(self, answer) -> None:
        if COOKIE in answer.cookies:
            self.cookie = answer.cookies[COOKIE].value or None


@pytest.fixture
def workers(tmp_path):
    """Two request workers of one `serve`: two apps over one log, one UI-state folder."""
    state = tmp_path / "ui-state"
    state.mkdir()
    config = Config(secrets=("s",), read_token=TOKEN, ui_state=str(state))
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    clock = [1_000.0]
    try:
        yield [create_app(config, store, views, clock=lambda: clock[0]) for _ in range(2)], clock
    finally:
        views.close()
        store.close()


def test_logging_out_ends_the_session_in_every_worker(workers):
    (one, other), _ = workers
    visitor = _Browser()
    assert visitor.post(one, "/ui/login", {"token": TOKEN, "next": "/ui/log"}).status_code == 303
    signed_in = visitor.cookie
    assert visitor.get(other, "/ui/log").status_code == 200
    assert visitor.post(other, "/ui/logout", {}).status_code == 303
    thief = _Browser()  # the cookie as it was before log out (copied, or replayed)
    thief.cookie = signed_in
    for app in (one, other):
        answer = thief.get(app, "/ui/log")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def test_the_login_form_is_throttled_per_client(workers):
    (one, _), clock = workers
    guesser = _Browser("203.0.113.9")
    answers = [guesser.post(one, "/ui/login", {"token": "guess"}).status_code for _ in range(8)]
    assert answers[:5] == [401] * 5 and answers[5:] == [429] * 3
    throttled = guesser.post(one, "/ui/login", {"token": TOKEN})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert _Browser("198.51.100.4").post(one, "/ui/login", {"token": "x"}).status_code == 401
    clock[0] += 1.0  # two more tries a second
    assert guesser.post(one, "/ui/login", {"token": TOKEN}).status_code == 303
