"""Mounting the pages on the receiver's app, with their security headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import falcon

from receiver.config import Config

from .actions import LoginPage, LogPage
from .auth import LoginThrottle, SessionMiddleware, Sessions
from .destinations import DestinationsPage
from .jobs import Job
from .overview import EventsPage, OverviewPage, RejectionsPage
from .pages import AssetPage, AssetsPage, EventPage, FailuresPage

# `default-src 'self'` covers scripts, styles (inline `style=` included), images and
# fonts; the rest close what default-src does not: framing, <base>, form targets.
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """Middleware: the strict policy on every /ui answer (pages, errors, static files)."""

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        if req.path == "/" or req.path == "/ui" or req.path.startswith("/ui/"):
            for name, value in HEADERS.items():
                if name == "Cache-Control" and req.path.startswith("/ui/static/"):
                    resp.set_header(name, "max-age=3600")
                    continue
                resp.set_header(name, value)


class Root:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPSeeOther("/ui/overview")


def add_routes(
    app: falcon.App,
    *,
    config: Config,
    store,
    views,
    now: Callable[[], str | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Mount /ui (and `/` redirecting to the overview) on `app`; call once, before serving.

    `clock` paces the login throttle.
    """
    sessions = Sessions(
        config.read_token,
        anonymous_seed=config.anonymous_session_seed(),
        state_folder=config.ui_state,
    )
    app.add_middleware([SecurityHeaders(), SessionMiddleware(sessions)])
    shared = {"store": store, "views": views, "stuck_after": config.stuck_after, "now": now}
    actions: dict[str, Any] = {
        "rebuilds": Job("rebuild", config.ui_state),
        "verifications": Job("verify", config.ui_state),
    }
    app.add_route("/", Root())
    app.add_route("/ui", AssetsPage(**shared))
    app.add_route("/ui/overview", OverviewPage(**shared))
    app.add_route("/ui/events", EventsPage(**shared))
    app.add_route("/ui/rejections", RejectionsPage(**shared))
    app.add_route("/ui/asset", AssetPage(**shared))
    app.add_route("/ui/failures", FailuresPage(**shared))
    event = EventPage(**shared)
    app.add_route("/ui/event", event)
    app.add_route("/ui/event/raw", event, suffix="raw")
    destinations = DestinationsPage(**shared)
    app.add_route("/ui/destinations", destinations)
    app.add_route("/ui/destinations/retry", destinations, suffix="retry")
    log = LogPage(**shared, **actions)
    app.add_route("/ui/log", log)
    app.add_route("/ui/log/verify", log, suffix="verify")
    app.add_route("/ui/log/rebuild", log, suffix="rebuild")
    login = LoginPage(sessions, LoginThrottle(clock=clock))
    app.add_route("/ui/login", login)
    app.add_route("/ui/logout", login, suffix="logout")
    static = resources.files("receiver.ui").joinpath("static")
    app.add_static_route("/ui/static", str(static))
