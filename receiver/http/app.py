"""The HTTP app: `create_app` wires routes, middleware and error handlers over an open store.

Production wiring (opening the store, the read models and the catch-up thread) is
`receiver.runtime.wiring.open_runtime`, which `serve` and `get_app` share.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable

import falcon
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import projections
from forwarding import is_failing
from projections import ProjectionDB
from receiver import logs, ui
from receiver.config import Config
from store import EventStore, StoreCorrupt, StoreError

from .destinations import DestinationResource, DestinationsResource
from .errors import DeliveryRejected, add_failure_handlers
from .metrics import Metrics
from .openapi import OpenAPIResource
from .queries import (
    AssetsResource,
    EventResource,
    EventsResource,
    RejectionsResource,
    StatsResource,
    TimelineResource,
    TransformationsResource,
    add_query_error_handlers,
)
from .webhook import WebhookResource, journal_rejection

log = logging.getLogger("ikledger.http")


# Request ids: unique per process start, without a system call per request.
_REQUEST_PREFIX = os.urandom(4).hex() + "-"
_request_numbers = itertools.count(1)


class RequestLog:
    """Middleware: a request id on every response, and an access-log line.

    Refused and failed requests are logged at INFO (5xx at WARNING); the 2xx of the
    ingest hot path only at DEBUG, so a busy receiver does not spend its time
    logging. A line names method, path, status and duration, and for a delivery its
    event id, position, outcome and refusal code (`signature_invalid`, …): never
    headers or bodies, so secrets, tokens and signatures cannot leak into logs. The
    path is the client's: `receiver.logs` escapes it, so it cannot forge a line.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        incoming = req.get_header("X-Request-Id")
        if incoming and len(incoming) <= 64 and incoming.isalnum():
            req.context.request_id = incoming
        else:
            req.context.request_id = f"{_REQUEST_PREFIX}{next(_request_numbers):x}"
        # Every record logged while this request runs carries its id (receiver.logs).
        req.context.log_token = logs.current_request.set(req.context.request_id)

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        resp.set_header("X-Request-Id", req.context.request_id)
        try:
            self._log(req, resp)
        finally:
            token = req.context.get("log_token")
            if token is not None:
                logs.current_request.reset(token)

    def _log(self, req, resp) -> None:
        status = resp.status_code
        level = (
            logging.WARNING if status >= 500 else logging.INFO if status >= 400 else logging.DEBUG
        )
        if log.isEnabledFor(level):
            elapsed_ms = (time.perf_counter() - req.context.started) * 1000
            context = req.context
            log.log(
                level,
                "%s %s %s %.1fms id=%s",
                req.method,
                req.path,
                status,
                elapsed_ms,
                context.request_id,
                # What a delivery came to, for receiver.logs: text appends them, JSON keys them.
                extra={
                    "request_id": context.request_id,
                    "status": status,
                    "event_id": context.get("event_id"),
                    "position": context.get("position"),
                    "outcome": context.get("outcome"),
                    "code": context.get("code"),
                },
            )


# What /healthz may say about a failed write: a code and a few generic words. The
# failure's own text names files, hosts and SQL, so it goes to the server log only.
CORRUPT = "store_corrupt: the log is damaged; run `ikledger verify`"
_WRITE_REASONS = (
    ("damaged", CORRUPT),
    ("locked", "locked: another writer holds the log"),
    ("readonly", "readonly: the log cannot be written"),
    ("read-only", "readonly: the log cannot be written"),
    ("full", "disk_full: no room left to write the log"),
    ("turn", "writer_turn: a writer of another process holds the turn"),
    ("writer", "writer_stopped: the writer thread stopped"),
)


def public_write_reason(detail: str) -> str:
    """The code and short reason /healthz shows for a write failure described by `detail`."""
    lowered = detail.lower()
    for word, reason in _WRITE_REASONS:
        if word in lowered:
            return reason
    return "store_unavailable: the log cannot be written right now"


class HealthResource:
    """GET /healthz: 200 with the last position; 503 when the log or the read models fail.

    Writability comes from `check_writable`: a real write probe on the first call and
    while writes are failing (it also names a dead writer), so a fault is reported
    before a delivery meets it, and health comes back once it clears even when no
    delivery arrives to prove it. `unavailable`: the log cannot be read; `degraded`:
    it cannot be written, or the read models cannot be read. A projection stopped at
    a poison event is reported in `projections` but keeps the status `ok`: ingest goes on.
    So does a catch-up or forwarding child process that died (`projector`, `forwarder`,
    restarted by `serve`), and a forwarding destination whose last attempt failed (named
    in `failing_destinations`).

    `code` says why a 503 is no passing trouble: `store_corrupt` once a read of the log
    met damage (here, or in the catch-up, whichever process runs it: its recorded
    error), `read_model_unavailable` when the read models are damaged, another log's
    or cannot be read.

    The route is open to anyone: failures are told as codes and a short generic
    reason (`error`, `write_error`, `read_model_error`, a projection's error `code`),
    their detail (paths, SQL, addresses) only in the server log.
    """

    def __init__(
        self, store: EventStore, views: ProjectionDB | None = None, projector=None, forwarder=None
    ):
        self.store = store
        self.views = views
        self.projector = projector  # anything with `status() -> dict`, or None
        self.forwarder = forwarder  # the forwarding child's, likewise
        self._checked = False  # whether damage the catch-up met was looked for here

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: dict = {"status": "ok"}
        try:
            body["position"] = self.store.last_position()
        except StoreError as exc:
            log.warning("healthz: the log cannot be read: %s: %s", type(exc).__name__, exc)
            body.update(status="unavailable", error="store_unavailable")
            if isinstance(exc, StoreCorrupt):
                body.update(error=CORRUPT, code="store_corrupt")
        try:
            write_error = self.store.check_writable()
        except StoreError as exc:
            write_error = str(exc)
        if write_error:
            log.warning("healthz: the log cannot be written: %s", write_error)
            body["write_error"] = public_write_reason(write_error)
            if write_error.startswith("damaged:"):
                body["code"] = "store_corrupt"
        if self.views is not None:
            self._read_models(body)
        if self.projector is not None:
            body["projector"] = self.projector.status()
        if self.forwarder is not None:
            body["forwarder"] = self.forwarder.status()
        try:
            failing = [d.name for d in self.store.forwarding().destinations() if is_failing(d)]
        except StoreError:
            failing = None  # the log's own trouble is reported above
        if failing:
            body["failing_destinations"] = failing
        if body["status"] == "ok" and ("write_error" in body or "read_model_error" in body):
            body["status"] = "degraded"
        if "code" in body and body["status"] == "ok":
            body["status"] = "unavailable"
        resp.media = body
        if body["status"] != "ok":
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "1")

    def _read_models(self, body: dict) -> None:
        try:
            rows = projections.projection_status(self.views)
        except StoreCorrupt as exc:
            log.warning("healthz: the log is damaged: %s", exc)
            body.update(status="unavailable", error=CORRUPT, code="store_corrupt")
            return
        except (*projections.UNREADABLE, projections.ReadModelOfAnotherLog) as exc:
            log.warning("healthz: the read models cannot be read: %s: %s", type(exc).__name__, exc)
            body["read_model_error"] = "read_model_unavailable"
            body.setdefault("code", "read_model_unavailable")
            return
        except Exception as exc:  # noqa: BLE001 -- health must answer whatever fails
            log.warning("healthz: the read models failed: %s: %s", type(exc).__name__, exc)
            body["read_model_error"] = "read_model_unavailable"
            return
        body["projections"] = [_public(row) for row in rows]
        damage = next(
            (
                row["error"]["message"]
                for row in rows
                if row["error"] and row["error"]["message"].startswith("StoreCorrupt:")
            ),
            None,
        )
        if damage is None:
            return
        log.warning("healthz: the catch-up met damage in the log: %s", damage)
        body.update(status="unavailable", error=CORRUPT, code="store_corrupt")
        if not self._checked:
            # The catch-up (maybe another process) met damage: look for it with this
            # process's store too, which then appends nothing more (see quick_check).
            self._checked = True
            try:
                self.store.quick_check()
            except StoreError as exc:
                log.warning("cannot check the log for damage: %s", exc)


def _public(status: dict) -> dict:
    """A projection's status without its error's message (the log page shows it)."""
    error = status.get("error")
    if not error:
        return status
    kept = {k: error[k] for k in ("position", "event_id", "at", "attempts") if k in error}
    return {**status, "error": {"code": "projection_stopped", **kept}}


class MetricsResource:
    """GET /metrics in the Prometheus text format."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self.metrics.registry)
        resp.content_type = CONTENT_TYPE_LATEST


def _json_handler() -> falcon.media.JSONHandler:
    return falcon.media.JSONHandler(dumps=orjson.dumps, loads=orjson.loads)


def create_app(
    config: Config,
    store: EventStore,
    views: ProjectionDB | None = None,
    *,
    clock: Callable[[], float] = time.time,
    now: Callable[[], str | None] = lambda: None,
    projector=None,
    forwarder=None,
) -> falcon.App:
    """Build the WSGI app over an open store (and read models, for the query API).

    The caller owns and closes both. Without `views` only the ingest routes exist.
    `now` fixes the clock of the stuck-transformation queries (None: real time).
    `projector` (the catch-up child's handle, see `receiver.runtime.catchup`) and
    `forwarder` (the forwarding child's, `receiver.runtime.forwarder`) are reported by
    `/healthz`.
    """
    app = falcon.App(middleware=[RequestLog()])
    handler = _json_handler()
    app.req_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    metrics = Metrics(
        store, views, shared=config.metrics_dir, forwarder_stats=config.forwarder_stats
    )
    app.add_route(
        "/webhook",
        WebhookResource(
            store,
            metrics,
            secrets=config.secrets,
            max_body=config.max_body,
            tolerance=config.tolerance,
            clock=clock,
        ),
    )
    app.add_route("/healthz", HealthResource(store, views, projector, forwarder))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/openapi.json", OpenAPIResource())
    add_failure_handlers(app)
    app.add_error_handler(DeliveryRejected, journal_rejection(store, metrics))
    if views is not None:
        _add_query_routes(app, config, store, views, now)
        ui.add_routes(app, config=config, store=store, views=views, now=now, clock=clock)
    return app


def _add_query_routes(app, config: Config, store, views, now) -> None:
    token = {"read_token": config.read_token}
    stuck = {"stuck_after": config.stuck_after, "now": now, **token}
    app.add_route("/timeline", TimelineResource(views, cache=projections.TimelineCache(), **stuck))
    app.add_route("/assets", AssetsResource(views, **stuck))
    app.add_route("/transformations", TransformationsResource(views, **stuck))
    app.add_route("/events", EventsResource(store, views, now=now, **token))
    app.add_route("/stats", StatsResource(views, **stuck))
    app.add_route("/rejections", RejectionsResource(store, now=now, **token))
    event = EventResource(store, **token)
    app.add_route("/events/{event_id}", event)
    app.add_route("/events/{event_id}/body", event, suffix="body")
    app.add_route("/destinations", DestinationsResource(store, **token))
    app.add_route("/destinations/{name}", DestinationResource(store, **token))
    add_query_error_handlers(app)
