"""The log page and the state-changing actions: verify, rebuild, log in, log out.

Every action is a POST that the session middleware has already checked for its CSRF
token and origin; each answers 303 to a page (post/redirect/get), so reloading a page
never repeats an action.
"""

from __future__ import annotations

import math
import os
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import falcon

import projections
from projections import ProjectionRunner
from receiver.events import verify_log
from receiver.runtime.children import process_alive

from .auth import LoginThrottle, Sessions
from .pages import Page, show
from .shared import SharedRecord


class Rebuilds:
    """At most one rebuild at a time, run on its own thread; what the last one did.

    The state (running, progress, result or error) is `Shared`, so every worker's log
    page shows it; the rebuild lease of the read models keeps two workers from
    rebuilding at once, and a rebuild whose worker died shows as failed.
    """

    def __init__(self, folder: str | None = None):
        self.state = SharedRecord("rebuild", folder)
        self.lock = threading.Lock()

    def view(self) -> SimpleNamespace:
        """What the log page shows: running, started_at, finished_at, result, error, progress."""
        state = dict(self.state.get() or {})
        if state.get("running") and not process_alive(state.get("pid", 0)):
            state.update(running=False, finished_at=time.time())
            state["error"] = "the request worker running it stopped before it finished"
        fields = ("running", "started_at", "finished_at", "result", "error", "progress")
        return SimpleNamespace(**{name: state.get(name) for name in fields})

    def start(self, views) -> bool:
        """Start a rebuild of every projection; False when one is already running."""
        with self.lock:
            if self.view().running:
                return False
            started = {"running": True, "started_at": time.time(), "pid": os.getpid()}
            self.state.set(started)
        threading.Thread(
            target=self._run, args=(views, started), name="ui-rebuild", daemon=True
        ).start()
        return True

    def _run(self, views, state: dict) -> None:
        def report(p) -> None:
            state["progress"] = f"{p.projection}: {p.phase} {p.done:,}/{p.total:,} events"
            self.state.set(state)

        try:
            result, error = ProjectionRunner(views).rebuild(progress=report), None
        except projections.RebuildBusy:
            # Another worker (or `ikledger rebuild`) holds the lease: its state stands
            # if it is this page's; otherwise say so.
            with self.lock:
                current = self.state.get() or {}
                if (
                    current.get("pid") == os.getpid()
                    and current.get("started_at") == state["started_at"]
                ):
                    self.state.set(
                        {
                            **state,
                            "running": False,
                            "finished_at": time.time(),
                            "error": "another rebuild of these read models is running",
                        }
                    )
            return
        except Exception as exc:  # noqa: BLE001 -- whatever it was, the page reports it
            result, error = None, str(exc)
        with self.lock:
            self.state.set(
                {
                    **state,
                    "running": False,
                    "finished_at": time.time(),
                    "result": result,
                    "error": error,
                }
            )


class Verifications:
    """The last chain verification asked for from the log page (`Shared`)."""

    def __init__(self, folder: str | None = None):
        self.state = SharedRecord("verify", folder)

    @property
    def last(self) -> dict | None:
        return self.state.get()

    @last.setter
    def last(self, value: dict | None) -> None:
        self.state.set(value)


class LogPage(Page):
    """GET /ui/log: the log (events, head), verify on demand, each read model's state."""

    def __init__(self, *, rebuilds: Rebuilds, verifications: Verifications, **page):
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
                verify=self.verifications.last,
                rebuild=self.rebuilds.view(),
            )

    def on_post_verify(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Recompute the chain now (what `ikledger verify` does); the result shows on /ui/log."""
        with self.errors_as_pages(req, resp):
            started = time.perf_counter()
            report = verify_log(self.store)
            self.verifications.last = {
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
        self.rebuilds.start(self.views)
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
