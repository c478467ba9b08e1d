"""The read-only query API: timelines, assets, transformations, events, stats, refusals.

Every resource here requires `Authorization: Bearer <IKLEDGER_READ_TOKEN>` when a
token is configured (compared in constant time). Query errors (a bad parameter, an
unknown asset) are mapped to HTTP once, in `add_query_error_handlers`; storage and
read-model failures of every route in `errors.add_failure_handlers`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import falcon

import forwarding
import projections
from projections import AssetNotFound, InvalidQuery, ProjectionDB
from receiver import timespec
from receiver.events import event_summary, refused_deliveries, select_events
from receiver.ingest.validation import InvalidEvent
from store import MAX_POSITION, EventStore

from .errors import coded

MAX_LIMIT = 1000


def require_token(req: falcon.Request, resp, resource, params) -> None:
    """401 unless the request carries the resource's read token (no token: open)."""
    token = resource.read_token
    if token is None:
        return
    scheme, _, offered = (req.auth or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered.encode(), token.encode()):
        raise coded(
            falcon.HTTPUnauthorized,
            "token_required",
            "this API needs Authorization: Bearer <IKLEDGER_READ_TOKEN>",
            challenges=["Bearer"],
        )


def _limit(req: falcon.Request, default: int = 50) -> int:
    limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_LIMIT)
    return default if limit is None else limit


@falcon.before(require_token)
class TimelineResource:
    def __init__(
        self,
        db: ProjectionDB,
        *,
        read_token: str | None,
        cache: projections.TimelineCache | None = None,
        stuck_after: float = projections.STUCK_AFTER.total_seconds(),
        now: Callable[[], str | None] = lambda: None,
    ):
        self.db = db
        self.read_token = read_token
        self.cache = cache
        self.stuck_after = stuck_after
        self.now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        asset = req.get_param("asset", required=True)
        as_of = req.get_param("as_of")
        # Bytes straight from SQLite's JSON functions (or the cache): nothing re-encoded.
        resp.data = projections.timeline_json(
            self.db,
            asset,
            as_of=None if not as_of else timespec.position_or_instant(as_of, self.now()),
            cache=self.cache,
            now=self.now(),
            stuck_after=self.stuck_after,
        )
        resp.content_type = falcon.MEDIA_JSON


class _StatusQuery:
    """A listing by transformation status; `stuck` is judged at `now()` (None: real time)."""

    def __init__(
        self,
        db: ProjectionDB,
        *,
        read_token: str | None,
        stuck_after: float,
        now: Callable[[], str | None],
    ):
        self.db = db
        self.read_token = read_token
        self.stuck_after = stuck_after
        self.now = now

    def _page(self, req: falcon.Request) -> dict:
        return {
            "status": req.get_param("status"),
            "limit": _limit(req),
            "cursor": req.get_param("cursor"),
            "now": self.now(),
            "stuck_after": self.stuck_after,
        }


@falcon.before(require_token)
class AssetsResource(_StatusQuery):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since = timespec.optional_instant(req.get_param("since"), self.now())
        resp.media = projections.assets(self.db, since=since, **self._page(req))


@falcon.before(require_token)
class TransformationsResource(_StatusQuery):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since = timespec.optional_instant(req.get_param("since"), self.now())
        resp.media = projections.transformations(
            self.db, reason=req.get_param("reason"), since=since, **self._page(req)
        )


@falcon.before(require_token)
class EventsResource:
    """GET /events: event metadata in log order, filtered; `next_cursor` pages on.

    With `q`: the events whose body holds those words (or "exact phrases"), from the
    search read model, newest first; `cursor` is then the position to go below.
    """

    def __init__(
        self,
        store: EventStore,
        db: ProjectionDB,
        *,
        read_token: str | None,
        now: Callable[[], str | None] = lambda: None,
    ):
        self.store = store
        self.db = db
        self.read_token = read_token
        self.now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = _limit(req)
        after = req.get_param_as_int("cursor", min_value=0, max_value=MAX_POSITION) or 0
        types = req.get_param_as_list("type") or []
        since = timespec.optional_instant(req.get_param("since"), self.now())
        asset = req.get_param("asset")
        q = req.get_param("q")
        if q is not None:
            rows = self._search(req, q, types, asset, since, after, limit + 1)
        elif asset is not None:
            positions = projections.asset_positions(
                self.db, asset, after=after, limit=limit + 1, types=types, since=since
            )
            rows = self.store.get_positions(positions)
        else:
            rows = list(
                select_events(self.store, types=types, since=since, after=after, limit=limit + 1)
            )
        page = rows[:limit]
        resp.media = {
            "events": [event_summary(e) for e in page],
            "next_cursor": str(page[-1].position) if len(rows) > limit else None,
        }

    def _search(self, req, q: str, types: list[str], asset, since, before: int, limit: int) -> list:
        if asset is not None or len(types) > 1:
            raise InvalidQuery("q takes at most one type and no asset")
        found = projections.search_events(
            self.db,
            q,
            type=types[0] if types else None,
            since=since,
            until=timespec.optional_instant(req.get_param("until"), self.now()),
            limit=limit,
            after=before or None,
        )
        events = {e.position: e for e in self.store.get_positions([f["position"] for f in found])}
        return [events[f["position"]] for f in found if f["position"] in events]


@falcon.before(require_token)
class StatsResource:
    """GET /stats: the overview's counts, durations and buckets (`projections.stats`)."""

    def __init__(
        self,
        db: ProjectionDB,
        *,
        read_token: str | None,
        stuck_after: float = projections.STUCK_AFTER.total_seconds(),
        now: Callable[[], str | None] = lambda: None,
    ):
        self.db = db
        self.read_token = read_token
        self.stuck_after = stuck_after
        self.now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = projections.stats(
            self.db,
            since=req.get_param("since"),
            until=req.get_param("until"),
            bucket=req.get_param("bucket", default="1h"),
            now=self.now(),
            stuck_after=self.stuck_after,
        )


@falcon.before(require_token)
class RejectionsResource:
    """GET /rejections: the journal's refused deliveries, newest first, and counts by reason."""

    def __init__(
        self,
        store: EventStore,
        *,
        read_token: str | None,
        now: Callable[[], str | None] = lambda: None,
    ):
        self.store = store
        self.read_token = read_token
        self.now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since = timespec.optional_instant(req.get_param("since") or None, self.now())
        until = timespec.optional_instant(req.get_param("until") or None, self.now())
        resp.media = refused_deliveries(self.store, since, until, _limit(req, 100))


@falcon.before(require_token)
class EventResource:
    """GET /events/{id}: metadata, the raw body, every delivery of that id, the bodies of
    its conflicting redeliveries, and its forwarding attempts (newest first)."""

    def __init__(self, store: EventStore, *, read_token: str | None):
        self.store = store
        self.read_token = read_token

    def _event(self, event_id: str):
        event = self.store.get(event_id)
        if event is None:
            raise coded(falcon.HTTPNotFound, "event_not_found", f"no event with id {event_id!r}")
        return event

    def on_get(self, req: falcon.Request, resp: falcon.Response, event_id: str) -> None:
        event = self._event(event_id)
        resp.media = {
            **event_summary(event),
            "chain": event.chain.hex(),
            "body": event.body.decode("utf-8"),
            "deliveries": [d._asdict() for d in self.store.deliveries(event_id=event_id)],
            "conflicts": [
                {"seq": c.seq, "received_at": c.received_at, "body": c.body.decode("utf-8")}
                for c in self.store.conflicts(event_id)
            ],
            "forwarding_attempts": forwarding.event_attempts(self.store, event_id),
        }

    def on_get_body(self, req: falcon.Request, resp: falcon.Response, event_id: str) -> None:
        """The body exactly as received, byte for byte."""
        resp.data = self._event(event_id).body
        resp.content_type = falcon.MEDIA_JSON


def add_query_error_handlers(app: falcon.App) -> None:
    """Map read-side errors to HTTP, once for every query route."""

    def not_found(req, resp, ex: AssetNotFound, params):
        raise coded(falcon.HTTPNotFound, "asset_not_found", str(ex))

    def invalid(req, resp, ex: Exception, params):
        message = getattr(ex, "message", None) or str(ex)
        raise coded(falcon.HTTPBadRequest, "invalid_query", message)

    def bad_parameter(req, resp, ex: falcon.HTTPError, params):
        # Falcon's own errors for get_param(required=True) and get_param_as_int carry no code.
        raise coded(falcon.HTTPBadRequest, "invalid_query", ex.description or ex.title)

    app.add_error_handler(AssetNotFound, not_found)
    app.add_error_handler(falcon.HTTPMissingParam, bad_parameter)
    app.add_error_handler(falcon.HTTPInvalidParam, bad_parameter)
    app.add_error_handler(InvalidQuery, invalid)
    app.add_error_handler(InvalidEvent, invalid)
