"""The log page and the state-changing actions: verify, rebuild, log in, log out.

Every action is a POST that the session middleware has already checked for its CSRF
token and origin; each answers 303 to a page (post/redirect/get), so reloading a page
never repeats an action.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import falcon

import projections
from projections import ProjectionRunner

from ..admin import verify_log
from .auth import Sessions
from .pages import Page, show


@dataclass
class Rebuilds:
    """At most one rebuild at a time, run on its own thread; what the last one did."""

    running: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    result: dict | None = None
    error: str | None = None
    progress: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, views) -> bool:
        """Start a rebuild of every projection; False when one is already running."""
        with self.lock:
            if self.running:
                return False
            self.running, self.started_at, self.finished_at = True, time.time(), None
            self.result = self.error = self.progress = None
        threading.Thread(target=self._run, args=(views,), name="ui-rebuild", daemon=True).start()
        return True

    def _run(self, views) -> None:
        def report(p) -> None:
            self.progress = f"{p.projection}: {p.phase} {p.done:,}/{p.total:,} events"

        try:
            result, error = ProjectionRunner(views).rebuild(progress=report), None
        except Exception as exc:  # noqa: BLE001 -- whatever it was, the page reports it
            result, error = None, str(exc)
        with self.lock:
            self.result, self.error = result, error
            self.running, self.finished_at = False, time.time()


@dataclass
class Verifications:
    last: dict | None = None


class LogPage(Page):
    """GET /ui/log: the log (events, head), verify on demand, each read model's state."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            stats = self.store.stats()
            self.show(
                req,
                resp,
                "log.html",
                stats=stats,
                head=stats.head.hex(),
                display_name=self.store.display_name,
                models=projections.projection_status(self.views),
                verify=self.extra["verifications"].last,
                rebuild=self.extra["rebuilds"],
            )

    def on_post_verify(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Recompute the chain now (what `ikledger verify` does); the result shows on /ui/log."""
        with self.errors_as_pages(req, resp):
            started = time.perf_counter()
            report = verify_log(self.store)
            self.extra["verifications"].last = {
                "ok": report.ok,
                "events": report.events,
                "first_bad_position": report.first_bad_position,
                "problem": report.problem,
                "head": report.head.hex(),
                "seconds": time.perf_counter() - started,
                "at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            }
            raise falcon.HTTPSeeOther("/ui/log#verify")

    def on_post_rebuild(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.extra["rebuilds"].start(self.views)
        raise falcon.HTTPSeeOther("/ui/log#rebuild")


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no `//`): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/ui"
    parts = urlsplit(target)
    return "/ui" if parts.scheme or parts.netloc or "\\" in target else target


class LoginPage:
    """GET/POST /ui/login: ask for the read token once; POST /ui/logout ends the session."""

    def __init__(self, sessions: Sessions):
        self.sessions = sessions

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.sessions.required:
            raise falcon.HTTPSeeOther("/ui")
        show(req, resp, "login.html", next=_safe_next(req.get_param("next")), failed=False)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = req.context.form
        target = _safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
        offered = form.get("token")
        if not isinstance(offered, str) or not self.sessions.check_token(offered):
            show(req, resp, "login.html", status=falcon.HTTP_401, next=target, failed=True)
            return
        # A new session on every login, so a cookie planted before it is worth nothing.
        self.sessions.set_cookie(req, resp, self.sessions.issue("a"))
        raise falcon.HTTPSeeOther(target)

    def on_post_logout(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.sessions.clear_cookie(req, resp)
        raise falcon.HTTPSeeOther("/ui/login" if self.sessions.required else "/ui")
