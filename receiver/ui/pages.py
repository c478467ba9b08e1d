"""The read pages: assets, one asset's timeline, failures, one event.

Each resource calls the same query functions as the JSON API (`projections.assets`,
`timeline`, `transformations`, the store's `get` and `deliveries`, forwarding's
`event_attempts`) and hands the
dict to a template; nothing here computes a field the API does not. Bad input is
an HTML page with the API's status code (400, 404); storage or read-model trouble a
transient retry may fix is a 503 page with `Retry-After`, a defect (a corrupt log,
a projection bug) a 500 page whose detail goes to the server log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import falcon
import orjson

import forwarding
import projections
from projections import AssetNotFound, InvalidQuery, ProjectionDB
from receiver import timespec
from receiver.events import event_summary, removal
from receiver.http.errors import RETRY_AFTER_S
from receiver.ingest.validation import InvalidEvent
from store import EventStore, StoreCorrupt, StoreError

from .diff import side_by_side
from .fragments import FragmentCache
from .templating import render, timeline_svg

STATUSES = ("ready", "error", "accepted", "stuck")
RANGES = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
PAGE_SIZE = 50
FAILURES_LIMIT = 200
DEFECT = "This page failed; the server log says why (request id {id})."

log = logging.getLogger("ikledger.ui")


class BadInput(Exception):
    """A query-string mistake: shown as a 400 page."""


def show(req, resp, template: str, *, status=falcon.HTTP_200, **context) -> None:
    """Answer with a page: the template, with the session's CSRF token for its forms."""
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = render(
        template,
        csrf=getattr(req.context, "csrf", ""),
        signed_in=getattr(req.context, "signed_in", False),
        path=req.path,
        **context,
    )


class Page:
    """Shared by every page resource: rendering, the clock and the error pages."""

    def __init__(
        self,
        *,
        store: EventStore,
        views: ProjectionDB,
        stuck_after: float,
        now: Callable[[], str | None],
    ):
        self.store = store
        self.views = views
        self.stuck_after = stuck_after
        self.now = now

    def moment(self) -> datetime:
        fixed = self.now()
        return datetime.fromisoformat(fixed) if fixed else datetime.now(UTC)

    def show(self, req, resp, template: str, *, status=falcon.HTTP_200, **context) -> None:
        show(req, resp, template, status=status, **context)

    @contextmanager
    def errors_as_pages(self, req, resp):
        """Map errors to the page and status the API would give (`http.errors`).

        A bad parameter is 400, an unknown asset 404; the log or the read models
        unreadable right now 503 with `Retry-After`; a corrupt log or any other
        failure (a `ProjectionDefect`, a bug) 500, its detail in the server log only.
        """
        try:
            yield
        except falcon.HTTPStatus:
            raise  # a redirect, not an error
        except AssetNotFound as exc:
            self.show(req, resp, "error.html", status=falcon.HTTP_404, message=str(exc))
        except (BadInput, InvalidEvent, InvalidQuery, falcon.HTTPError) as exc:
            message = getattr(exc, "message", None) or getattr(exc, "description", None)
            self.show(req, resp, "error.html", status=falcon.HTTP_400, message=message or str(exc))
        except StoreCorrupt as exc:
            self._defect(req, resp, exc)
        except (*projections.UNREADABLE, projections.ReadModelOfAnotherLog, StoreError) as exc:
            # The log or the read models cannot answer (damaged, another log's, locked):
            # say so to the signed-in reader, and that a retry may do.
            log.warning("%s %s: %s: %s", req.method, req.path, type(exc).__name__, exc)
            resp.set_header("Retry-After", str(RETRY_AFTER_S))
            self.show(req, resp, "error.html", status=falcon.HTTP_503, message=str(exc))
        except Exception as exc:  # noqa: BLE001 -- a page answers, whatever failed
            self._defect(req, resp, exc)

    def _defect(self, req, resp, exc: Exception) -> None:
        request_id = req.context.get("request_id")
        log.error("%s %s failed, id=%s", req.method, req.path, request_id, exc_info=exc)
        message = DEFECT.format(id=request_id)
        self.show(req, resp, "error.html", status=falcon.HTTP_500, message=message)


def read_model_problem(views: ProjectionDB) -> str | None:
    """Why the read models may not hold the whole log, from their status; None when they do.

    A projection stopped at a failure (the catch-up met a damaged log, say: whichever
    process runs it records it) or a checkpoint past the log's head. Raises what
    `projection_status` raises (StoreError, the read models' errors).
    """
    for row in projections.projection_status(views):
        if row["state"] == "ahead_of_log":
            return (
                f"the read models ({row['name']}) are ahead of the log: checkpoint "
                f"{row['checkpoint']}, log head {row['log_position']}; `ikledger rebuild`"
            )
        if row["error"] and row["state"] != "current":
            return (
                f"the read models ({row['name']}) stopped at position "
                f"{row['checkpoint']} of {row['log_position']}: {row['error']['message']}"
            )
    return None


def limit_param(req: falcon.Request) -> int:
    raw = req.get_param("limit")
    if raw is None or raw == "":
        return PAGE_SIZE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise BadInput("limit must be a whole number from 1 to 1000")
    return int(raw)


def query_string(params: dict) -> str:
    """Non-empty parameters only, so shared links stay short."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


class AssetsPage(Page):
    """GET /ui: assets newest first, filtered by status and time, or found by a search."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            status = req.get_param("status") or None
            since = req.get_param("since") or None
            text = (req.get_param("q") or "").strip()
            filters = {"status": status, "since": since, "q": text}
            limit = limit_param(req)
            found = None
            result: dict[str, Any] = {"assets": [], "next_cursor": None}
            hit = self.store.get(text) if text else None
            if hit is not None:
                raise falcon.HTTPSeeOther("/ui/event?" + query_string({"id": text}))
            if text:
                found = projections.search_transformations(self.views, text, limit=limit)
            else:
                result = projections.assets(
                    self.views,
                    status=status,
                    since=timespec.optional_instant(since, self.moment()),
                    limit=limit,
                    cursor=req.get_param("cursor") or None,
                    now=self.now(),
                    stuck_after=self.stuck_after,
                )
            problem = None
            if found is None and not result["assets"]:
                problem = read_model_problem(self.views)
                if problem is not None:  # not "No assets yet": the answer is unknown
                    resp.set_header("Retry-After", str(RETRY_AFTER_S))
                    self.show(req, resp, "error.html", status=falcon.HTTP_503, message=problem)
                    return
            next_link = None
            if result["next_cursor"]:
                next_link = "/ui?" + query_string(
                    {**filters, "limit": req.get_param("limit"), "cursor": result["next_cursor"]}
                )
            self.show(
                req,
                resp,
                "assets.html",
                result=result,
                found=found,
                filters=filters,
                statuses=STATUSES,
                ranges=RANGES,
                next_link=next_link,
                first_link="/ui?" + query_string(filters) if req.get_param("cursor") else None,
                link=lambda **changes: "/ui?" + query_string({**filters, **changes}),
            )


class AssetPage(Page):
    """GET /ui/asset?url=URL[&as_of=POSITION|TIME]: the picture and the table of fields.

    Reads `timeline_json` through a `TimelineCache`, as `GET /timeline` does, and keeps
    rendered fragments in a `FragmentCache` (both never stale).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.timelines = projections.TimelineCache()
        self.fragments = FragmentCache()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            url = req.get_param("url")
            if not url:
                raise BadInput("which asset? give ?url=")
            as_of = req.get_param("as_of") or None
            window = zoom_window(req)
            started = time.perf_counter()
            point = None if as_of is None else timespec.position_or_instant(as_of, self.moment())
            document = projections.timeline_json(self.views, url, as_of=point, cache=self.timelines)
            result, digest = self.fragments.parse(document)
            here = "/ui/asset?" + query_string({"url": url, "as_of": as_of})

            def fragment(moment: datetime) -> str:
                svg = timeline_svg(
                    result,
                    now=moment,
                    stuck_after=self.stuck_after,
                    link="/ui/event?id=",
                    standalone=False,
                    window=window,
                    zoom=here,
                )
                return render("asset_fragment.html", result=result, svg=svg)

            if window is None:
                shown = self.fragments.get_or_render(result, self.moment(), fragment, digest)
            else:  # a zoomed picture is not cached: the cache keys the whole timeline only
                shown = fragment(self.moment())

            self.show(
                req,
                resp,
                "asset.html",
                result=result,
                fragment=shown,
                as_of=as_of or "",
                window=window,
                unzoom_link=here,
                head=self.store.last_position(),
                render_ms=(time.perf_counter() - started) * 1000,
                json_link="/timeline?" + query_string({"asset": url, "as_of": as_of}),
            )


def zoom_window(req: falcon.Request) -> tuple[str, str] | None:
    """The asset page's `from`/`to` zoom window (ISO-8601 times), or None for the whole."""
    start, end = req.get_param("from") or None, req.get_param("to") or None
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise BadInput("zoom takes both from= and to=")
    start, end = timespec.instant(start), timespec.instant(end)
    if start >= end:
        raise BadInput("from must be before to")
    return start, end


class FailuresPage(Page):
    """GET /ui/failures: transformations in error by reason, and the stuck ones."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            common: dict[str, Any] = {
                "now": self.now(),
                "stuck_after": self.stuck_after,
                "limit": FAILURES_LIMIT,
            }
            errors = projections.transformations(self.views, status="error", **common)
            stuck = projections.transformations(self.views, status="stuck", **common)
            groups: dict[str, list[dict]] = {}
            for item in errors["transformations"]:
                groups.setdefault(item["error_reason"] or "(no reason given)", []).append(item)
            if stuck["transformations"]:
                groups["stuck after accepted"] = stuck["transformations"]
            self.show(
                req,
                resp,
                "failures.html",
                groups=sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])),
                truncated=bool(errors["next_cursor"] or stuck["next_cursor"]),
                limit=FAILURES_LIMIT,
                stuck_after=self.stuck_after,
            )


def _delivery(row) -> dict:
    return row._asdict()


def _asset_of(body: bytes) -> str | None:
    """The asset URL the body names, for a link back to its timeline (video events only)."""
    try:
        url = orjson.loads(body).get("data", {}).get("asset", {}).get("url")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return url if isinstance(url, str) else None


def _conflicts(stored: bytes, conflicts, deliveries: list[dict]) -> list[dict]:
    """Each conflicting body beside the stored one, differing lines marked, with its
    journal row (time, size, sender)."""
    rows = {d["seq"]: d for d in deliveries}
    shown = []
    for conflict in conflicts:
        left, right = side_by_side(stored, conflict.body)
        row = rows.get(conflict.seq, {})
        shown.append(
            {
                **row,
                "received_at": conflict.received_at,
                "size": len(conflict.body),
                "stored_lines": left,
                "lines": right,
                "same_lines": not any(line.differs for line in (*left, *right)),
            }
        )
    return shown


class EventPage(Page):
    """GET /ui/event?id=ID: metadata, the raw body as received, pretty JSON, deliveries,
    forwarding attempts."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            event_id = req.get_param("id")
            if not event_id:
                raise BadInput("which event? give ?id=")
            event = self.store.get(event_id)
            if event is None:
                self.show(
                    req,
                    resp,
                    "error.html",
                    status=falcon.HTTP_404,
                    message=f"no event with id {event_id!r}",
                )
                return
            pruned = removal(self.store, event)
            raw = event.body.decode("utf-8")
            try:
                pretty = orjson.dumps(orjson.loads(event.body), option=orjson.OPT_INDENT_2)
            except orjson.JSONDecodeError:
                pretty = None
            deliveries = [_delivery(d) for d in self.store.deliveries(event_id=event_id)]
            attempts = forwarding.event_attempts(self.store, event_id)
            self.show(
                req,
                resp,
                "event.html",
                event={**event_summary(event), "chain": event.chain.hex()},
                pruned=pruned,
                raw=raw,
                pretty=pretty.decode() if pretty else None,
                deliveries=deliveries,
                conflicts=_conflicts(event.body, self.store.conflicts(event_id), deliveries),
                attempts=attempts,
                asset=_asset_of(event.body),
                raw_link="/ui/event/raw?" + query_string({"id": event_id}),
            )

    def on_get_raw(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The body exactly as received, as plain text (never sniffed or rendered)."""
        with self.errors_as_pages(req, resp):
            event = self.store.get(req.get_param("id") or "")
            if event is None:
                self.show(req, resp, "error.html", status=falcon.HTTP_404, message="no such event")
                return
            resp.data = event.body
            resp.content_type = "text/plain; charset=utf-8"
