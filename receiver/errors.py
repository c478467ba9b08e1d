"""HTTP errors with stable machine-readable codes, rendered by Falcon's own serializer."""

from __future__ import annotations

import falcon

RETRY_AFTER_S = 1


class DeliveryRejected(falcon.HTTPError):
    """A webhook delivery refused with a 4xx; the error handler journals it."""

    def __init__(self, status: str, code: str, description: str, **kwargs):
        super().__init__(status, description=description, **kwargs)
        self.code = code


class StoreUnavailableError(falcon.HTTPError):
    """503: the event could not be made durable; the sender should retry."""

    def __init__(self, description: str):
        super().__init__(
            falcon.HTTP_503,
            description=description,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        self.code = "store_unavailable"


def coded(error_class: type[falcon.HTTPError], code: str, description: str, **kwargs):
    """An instance of a Falcon error class carrying a stable `code`."""
    error = error_class(description=description, **kwargs)
    error.code = code
    return error
