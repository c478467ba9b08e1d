"""The forwarding part of the query API: destinations, their state, lag and failed events.

Read token like every query route (`queries.require_token`). URLs are shown without
credentials and secrets never: the dicts come from `forwarding`'s status functions,
which hold neither.
"""

from __future__ import annotations

import falcon

import forwarding
from store import EventStore

from .errors import coded
from .queries import require_token


@falcon.before(require_token)
class DestinationsResource:
    """GET /destinations: every destination's settings, counts, lag and last outcomes."""

    def __init__(self, store: EventStore, *, read_token: str | None):
        self.store = store
        self.read_token = read_token

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"destinations": forwarding.list_destinations(self.store)}


@falcon.before(require_token)
class DestinationResource:
    """GET /destinations/{name}: one destination's status and its failed events."""

    def __init__(self, store: EventStore, *, read_token: str | None):
        self.store = store
        self.read_token = read_token

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        try:
            status = forwarding.destination_status(self.store, name)
            failed = forwarding.failed_events(self.store, name)
        except forwarding.ForwardingError:
            raise coded(
                falcon.HTTPNotFound, "destination_not_found", f"no destination named {name!r}"
            ) from None
        resp.media = {**status, "failed_events": failed}
