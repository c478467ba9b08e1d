"""HTTP errors with stable machine-readable codes, and the one place failures become HTTP.

Error codes of storage trouble (every route):

- `store_unavailable` (503, `Retry-After`): the log cannot be read or written right
  now (`StoreUnavailable`, `StoreClosed`, any other `StoreError` but corruption).
- `read_model_unavailable` (503, `Retry-After`): the read models' file cannot be read
  (locked past its timeout, damaged, missing tables); a rebuild or a retry fixes it.
- `store_corrupt` (500, no `Retry-After`): the log holds something no retry will read
  (`StoreCorrupt`); retrying the same request fails the same way. On `POST /webhook`
  it is a 503 with `Retry-After`: the sender keeps the event until the log is repaired.
- `internal_error` (500): anything else; the traceback goes to the log, never to the
  client.
"""

from __future__ import annotations

import logging

import falcon

import projections
from store.contract import StoreCorrupt, StoreError

RETRY_AFTER_S = 1

log = logging.getLogger("ikledger.http")


class DeliveryRejected(falcon.HTTPError):
    """A webhook delivery refused with a 4xx; the error handler journals it."""

    def __init__(self, status: str, code: str, description: str, **kwargs):
        super().__init__(status, description=description, **kwargs)
        self.code = code


class Unavailable(falcon.HTTPError):
    """503 with `Retry-After`: storage trouble that a retry may not meet."""

    def __init__(self, code: str, description: str):
        super().__init__(
            falcon.HTTP_503,
            description=description,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        self.code = code


class StoreUnavailableError(Unavailable):
    """503: the event could not be made durable; the sender should retry."""

    def __init__(self, description: str):
        super().__init__("store_unavailable", description)


def coded(error_class: type[falcon.HTTPError], code: str, description: str, **kwargs):
    """An instance of a Falcon error class carrying a stable `code`."""
    error = error_class(description=description, **kwargs)
    error.code = code
    return error


def add_failure_handlers(app: falcon.App) -> None:
    """Map store, read-model and unexpected failures to coded HTTP errors, once for all routes."""

    def store_failed(req, resp, ex: StoreError, params):
        _warn(req, "store", ex)
        if isinstance(ex, StoreCorrupt):
            raise coded(
                falcon.HTTPInternalServerError,
                "store_corrupt",
                "the log holds a record that cannot be read; run `ikledger verify`",
            )
        raise Unavailable("store_unavailable", "the event log cannot be read right now; retry")

    def read_model_failed(req, resp, ex: Exception, params):
        _warn(req, "read models", ex)
        raise Unavailable(
            "read_model_unavailable", "the read models cannot be read right now; retry"
        )

    def unexpected(req, resp, ex: Exception, params):
        log.error(
            "%s %s failed, id=%s", req.method, req.path, req.context.get("request_id"), exc_info=ex
        )
        raise coded(
            falcon.HTTPInternalServerError,
            "internal_error",
            f"internal error; the server log names it by request id {req.context.get('request_id')}",
        )

    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(StoreError, store_failed)
    for error in projections.UNREADABLE:
        app.add_error_handler(error, read_model_failed)


def _warn(req: falcon.Request, what: str, ex: Exception) -> None:
    log.warning(
        "%s %s: %s failed (%s: %s), id=%s",
        req.method,
        req.path,
        what,
        type(ex).__name__,
        ex,
        req.context.get("request_id"),
    )
