"""Sessions and cross-site protection for the pages, with the standard library only.

With `IKLEDGER_READ_TOKEN` set, every page but the login page and the static files
needs a session cookie: `<expires>.<nonce>.<mac>`, the MAC an HMAC-SHA256 keyed from
the token, so changing the token ends every session. The cookie is `HttpOnly`,
`SameSite=Strict`, `Secure` when the request came over HTTPS (or `X-Forwarded-Proto:
https`), and expires after `SESSION_SECONDS`. Without a token the pages are open and a
visitor still gets an (anonymous) session, keyed by a random key, so that the CSRF
check below works the same way; the key is per process, or shared by the request
processes of one `ikledger serve --workers N` (their supervisor hands them one seed
in IKLEDGER_SESSION_SEED), so a session works whichever of them answers.

Sessions are revocable: the MAC also covers the sessions' epoch, a number kept in
the UI-state folder every request worker of one `serve` shares (in memory without
one). Logging out moves it, which ends every session issued before (a token change
ends them too: the key comes from the token). Login attempts are throttled per
client (`LoginThrottle`).

Every POST carries a CSRF token, an HMAC of the session (so a page of another site can
neither read nor forge it), and must come from the same origin when the browser says
where it came from (`Origin`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import falcon

from .shared import SharedRecord
from .templating import render

COOKIE = "ikledger_session"
SESSION_SECONDS = 12 * 3600
OPEN_PATHS = ("/ui/login", "/ui/static/")


class Sessions:
    """Issues and checks session cookies and the CSRF tokens derived from them."""

    def __init__(
        self,
        read_token: str | None,
        *,
        clock: Callable[[], float] = time.time,
        lifetime: int = SESSION_SECONDS,
        anonymous_seed: bytes | None = None,
        state_folder: str | None = None,
    ):
        """`anonymous_seed` keys the sessions when there is no read token (None: drawn);
        `state_folder` holds the epoch shared by every worker (None: this process's)."""
        self.read_token = read_token
        seed = read_token.encode() if read_token else anonymous_seed or secrets.token_bytes(32)
        self._key = hmac.new(seed, b"ikledger ui session v1", hashlib.sha256).digest()
        self.clock = clock
        self.lifetime = lifetime
        self._epoch = SharedRecord("session-epoch", state_folder)

    def epoch(self) -> int:
        """The sessions' epoch: a session issued under another one is no session."""
        value = self._epoch.get()
        epoch = value.get("epoch") if isinstance(value, dict) else None
        return epoch if isinstance(epoch, int) else 0

    def revoke_all(self) -> None:
        """End every session issued so far, in every request worker."""
        self._epoch.set({"epoch": self.epoch() + 1})

    @property
    def required(self) -> bool:
        return self.read_token is not None

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def _session_mac(self, payload: str) -> str:
        return self._mac(f"{payload}.{self.epoch()}")

    def check_token(self, offered: str) -> bool:
        """Whether `offered` is the read token (constant time)."""
        if self.read_token is None:
            return True
        return hmac.compare_digest(offered.encode(), self.read_token.encode())

    def issue(self, kind: str) -> str:
        """A new cookie value: kind `a` (signed in with the token) or `p` (no token given)."""
        expires = int(self.clock()) + self.lifetime
        payload = f"{expires}.{kind}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._session_mac(payload)}"

    def kind(self, cookie: str | None) -> str | None:
        """`a` or `p` for a cookie we signed that has not expired; None otherwise."""
        # A cookie is whatever the client sent (any bytes a header may hold): one that
        # is not ASCII was never ours, and compare_digest refuses non-ASCII str.
        if not cookie or not cookie.isascii() or cookie.count(".") != 3:
            return None
        expires, kind, nonce, mac = cookie.split(".")
        expected = self._session_mac(f"{expires}.{kind}.{nonce}")
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        if not (expires.isascii() and expires.isdigit()) or int(expires) <= self.clock():
            return None
        return kind if kind in ("a", "p") else None

    def csrf(self, cookie: str) -> str:
        return self._mac(f"csrf:{cookie}")

    def csrf_ok(self, cookie: str | None, offered: object) -> bool:
        if not cookie or not isinstance(offered, str) or not offered:
            return False
        return hmac.compare_digest(self.csrf(cookie).encode(), offered.encode())

    def set_cookie(self, req: falcon.Request, resp: falcon.Response, value: str) -> None:
        resp.set_cookie(
            COOKIE,
            value,
            max_age=self.lifetime,
            path="/",
            secure=is_https(req),
            http_only=True,
            same_site="Strict",
        )

    def clear_cookie(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.unset_cookie(COOKIE, path="/", same_site="Strict")


class LoginThrottle:
    """A few login attempts per client: `burst` at once, then `rate` a second.

    A token bucket per client address, in this process's memory (each request worker
    of a `serve` keeps its own); at most `max_clients` addresses are remembered, the
    oldest forgotten first.
    """

    def __init__(
        self,
        *,
        rate: float = 2.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client: (tokens, at)
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """0 and one attempt counted when `client` may try now; else seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)  # newest last: the oldest go first
            while len(self._buckets) > self.max_clients:
                del self._buckets[next(iter(self._buckets))]
        return 0.0 if allowed else (1.0 - tokens) / self.rate


def is_https(req: falcon.Request) -> bool:
    forwarded = (req.get_header("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
    return req.scheme == "https" or forwarded == "https"


def session_cookie(req: falcon.Request) -> str | None:
    values = req.get_cookie_values(COOKIE)
    return values[0] if values else None


def same_origin(req: falcon.Request) -> bool:
    """False when the browser names another origin (`Origin`); absent means a non-browser."""
    origin = req.get_header("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == req.host + ("" if req.port in (80, 443) else f":{req.port}")


def login_redirect(req: falcon.Request) -> falcon.HTTPSeeOther:
    target = req.relative_uri if req.method == "GET" else "/ui"
    return falcon.HTTPSeeOther(f"/ui/login?next={quote(target, safe='')}")


class SessionMiddleware:
    """Gate every /ui page behind a session (when a token is set) and every POST behind CSRF.

    Puts the session cookie and its CSRF token on `req.context` for the templates.
    """

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        if not (req.path == "/ui" or req.path.startswith("/ui/")):
            return
        cookie = session_cookie(req)
        kind = self.sessions.kind(cookie)
        if req.method == "POST":
            # First: a POST without its session's CSRF token is refused, signed in or not.
            req.context.form = _form(req)
            offered = req.context.form.get("csrf")
            if not same_origin(req) or kind is None or not self.sessions.csrf_ok(cookie, offered):
                _forbidden(req, resp)
                return
        if self.sessions.required and kind != "a" and not req.path.startswith(OPEN_PATHS):
            raise login_redirect(req)
        if kind is None:
            # No token configured, or not signed in yet: a session only for CSRF.
            cookie = self.sessions.issue("p")
            self.sessions.set_cookie(req, resp, cookie)
        req.context.session = cookie
        req.context.signed_in = kind == "a" and self.sessions.required
        req.context.csrf = self.sessions.csrf(cookie)


def _forbidden(req: falcon.Request, resp: falcon.Response) -> None:
    resp.status = falcon.HTTP_403
    resp.content_type = falcon.MEDIA_HTML
    resp.text = render(
        "error.html",
        message="This form expired or came from another site: reload the page.",
        csrf="",
        signed_in=False,
        path=req.path,
    )
    resp.complete = True


def _form(req: falcon.Request) -> dict:
    """The POSTed form; {} for any other body (the CSRF check then refuses it)."""
    if not req.content_length or req.content_type is None:
        return {}
    if req.content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    try:
        form = req.get_media(default_when_empty={})
    except falcon.MediaMalformedError:
        return {}
    return form if isinstance(form, dict) else {}
