"""POST /webhook: verify, validate, append durably, then acknowledge."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import falcon

from receiver.ingest.receive import new_event
from receiver.ingest.signatures import SignatureError, verify
from receiver.ingest.validation import InvalidEvent
from store import EventStore, Outcome, Rejection, StoreCorrupt, StoreError

from .errors import DeliveryRejected, StoreUnavailableError, Unavailable
from .metrics import Metrics

log = logging.getLogger("ikledger.webhook")

# WSGI environ keys of the signature headers, and the names `verify` knows them by.
_SIGNATURE_HEADERS = (
    ("HTTP_WEBHOOK_ID", "webhook-id"),
    ("HTTP_WEBHOOK_TIMESTAMP", "webhook-timestamp"),
    ("HTTP_WEBHOOK_SIGNATURE", "webhook-signature"),
    ("HTTP_X_IK_SIGNATURE", "x-ik-signature"),
)


def check_delivery(req: falcon.Request, resp, resource, params) -> None:
    """413 when Content-Length announces a body over the limit; 415 unless it is JSON.

    Media type parameters such as charset are allowed.
    """
    length = req.content_length
    if length is not None and length > resource.max_body:
        raise DeliveryRejected(
            falcon.HTTP_413,
            "body_too_large",
            f"body of {length} bytes is over the limit of {resource.max_body}",
        )
    content_type = req.content_type or ""
    if content_type != "application/json":  # the common case needs no parsing
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise DeliveryRejected(
                falcon.HTTP_415,
                "unsupported_media_type",
                f"Content-Type must be application/json, got {media_type or 'none'}",
            )


class WebhookResource:
    """Receives ImageKit deliveries; acknowledges only what the store made durable."""

    def __init__(
        self,
        store: EventStore,
        metrics: Metrics,
        *,
        secrets: Sequence[str],
        max_body: int,
        tolerance: int,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.metrics = metrics
        self.secrets = tuple(secrets)
        self.max_body = max_body
        self.tolerance = tolerance
        self.clock = clock

    @falcon.before(check_delivery)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Without Content-Length (chunked), read the server's input stream, still bounded.
        stream = req.bounded_stream if req.content_length is not None else req.stream
        body = stream.read(self.max_body + 1)
        req.context.body = body
        if len(body) > self.max_body:
            raise DeliveryRejected(
                falcon.HTTP_413,
                "body_too_large",
                f"body is over the limit of {self.max_body} bytes",
            )
        env = req.env
        headers = {name: env[key] for key, name in _SIGNATURE_HEADERS if key in env}
        try:
            verified = verify(headers, body, self.secrets, tolerance=self.tolerance, now=self.clock)
        except SignatureError as exc:
            raise DeliveryRejected(falcon.HTTP_401, exc.code, exc.message) from None
        req.context.scheme = verified.scheme
        try:
            event = new_event(body, scheme=verified.scheme, remote_addr=req.remote_addr)
        except InvalidEvent as exc:
            raise DeliveryRejected(falcon.HTTP_400, exc.code, exc.message) from None
        req.context.event_id = event.id
        started = time.perf_counter()
        try:
            result = self.store.append(event)
        except StoreError as exc:
            self.metrics.delivery("unavailable")
            log.warning("event %s not stored, answering 503: %s", event.id, exc)
            if isinstance(exc, StoreCorrupt):  # nothing is appended after damage
                raise Unavailable(
                    "store_corrupt",
                    "the log is damaged and takes no more events; run `ikledger verify`",
                ) from None
            raise StoreUnavailableError(
                "the event could not be made durable; retry later"
            ) from None
        self.metrics.append_seconds.observe(time.perf_counter() - started)
        self.metrics.delivery(result.outcome.value)
        req.context.position = result.position
        req.context.outcome = result.outcome.value
        resp.media = {
            "received": True,
            "id": result.id,
            "position": result.position,
            "duplicate": result.duplicate,  # any redelivery, as before `conflict` existed
            "conflict": result.outcome is Outcome.CONFLICT,
        }


def journal_rejection(store: EventStore, metrics: Metrics):
    """An error handler that journals a refused delivery, then lets Falcon render it."""

    def handle(req: falcon.Request, resp: falcon.Response, ex: DeliveryRejected, params) -> None:
        context = req.context
        body = context.get("body")
        metrics.rejection(ex.code)
        context.code = ex.code  # for the access log: which check refused it
        try:
            store.record_rejection(
                Rejection(
                    reason=ex.code,
                    status=int(ex.status_code),
                    # Digested here, off the path of accepted deliveries.
                    body_sha256=None if body is None else hashlib.sha256(body).digest(),
                    size=req.content_length if body is None else len(body),
                    event_id=context.get("event_id"),
                    scheme=context.get("scheme"),
                    remote_addr=req.remote_addr,
                )
            )
        except StoreError:
            pass  # the journal is best effort for refused deliveries
        raise ex

    return handle
