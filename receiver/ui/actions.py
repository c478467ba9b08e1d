"""The log page and the state-changing actions: verify, rebuild, log in, log out.

Every action is a POST that the session middleware has already checked for its CSRF
token and origin; each answers 303 to a page (post/redirect/get), so reloading a page
never repeats an action.
"""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

import falcon

import projections
from projections import ProjectionRunner
from receiver.events import verify_log

from .auth import LoginThrottle, Sessions
from .jobs import Job, Work
from .pages import Page, show


def rebuild_work(views) -> Work:
    """Rebuild every projection of `views`; the result is events per projection."""

    def work(report) -> dict:
        def progress(p) -> None:
            report(f"{p.projection}: {p.phase} {p.done:,}/{p.total:,} events")

        try:
            return ProjectionRunner(views).rebuild(progress=progress)
        except projections.RebuildBusy:
            # `ikledger rebuild` (or another log page) holds the read models' lease.
            raise RuntimeError("another rebuild of these read models is running") from None

    return work


def verify_work(store) -> Work:
    """What `ikledger verify` checks; the result is what the log page shows of it.

    `head` is the chain head the check reached: the log's head when it verified; the
    last good event's otherwise, None when no event was good (never GENESIS' zeros).
    """

    def work(report) -> dict:
        report("recomputing the chain from the first event")
        started = time.perf_counter()
        result = verify_log(store)
        return {
            "ok": result.ok,
            "events": result.events,
            "first_bad_position": result.first_bad_position,
            "problem": result.problem,
            "head": result.head.hex() if result.ok or result.events else None,
            "seconds": time.perf_counter() - started,
            "at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }

    return work


class LogPage(Page):
    """GET /ui/log: the log (events, head), verify on demand, each read model's state.

    Verify and rebuild run in the background (`jobs.Job`), one of each at a time
    across the request workers; the page shows their progress and last result.
    """

    def __init__(self, *, rebuilds: Job, verifications: Job, **page):
        super().__init__(**page)
        self.rebuilds = rebuilds
        self.verifications = verifications

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
                verify=self.verifications.view(),
                rebuild=self.rebuilds.view(),
            )

    def on_post_verify(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Start recomputing the chain (what `ikledger verify` does); /ui/log shows it."""
        self.verifications.start(verify_work(self.store))
        raise falcon.HTTPSeeOther("/ui/log#verify")

    def on_post_rebuild(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.rebuilds.start(rebuild_work(self.views))
        raise falcon.HTTPSeeOther("/ui/log#rebuild")


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no `//`): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/ui"
    parts = urlsplit(target)
    return "/ui" if parts.scheme or parts.netloc or "\\" in target else target


class LoginPage:
    """GET/POST /ui/login: ask for the read token once; POST /ui/logout ends the session.

    Login attempts are throttled per client (`LoginThrottle`: 429 with Retry-After).
    Logging out of a signed-in session ends every signed-in session (they share one
    token): it moves the sessions' epoch, which every request worker reads.
    """

    def __init__(self, sessions: Sessions, throttle: LoginThrottle):
        self.sessions = sessions
        self.throttle = throttle

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.sessions.required:
            raise falcon.HTTPSeeOther("/ui")
        show(req, resp, "login.html", next=_safe_next(req.get_param("next")), failed=False)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        wait = self.throttle.wait(req.remote_addr or "")
        if wait:
            resp.set_header("Retry-After", str(math.ceil(wait)))
            message = "Too many attempts to log in: wait a moment, then try again."
            show(req, resp, "error.html", status=falcon.HTTP_429, message=message)
            return
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
        if req.context.signed_in:
            self.sessions.revoke_all()
        self.sessions.clear_cookie(req, resp)
        raise falcon.HTTPSeeOther("/ui/login" if self.sessions.required else "/ui")
