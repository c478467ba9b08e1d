"""The Destinations page: where forwarding stands, and Retry failed.

Reads what `GET /destinations/{name}` answers (`forwarding.destination_status`,
`failed_events`); Retry failed is `ikledger replay NAME --failed`, a POST that the
session middleware has checked for its CSRF token, answered 303 (post/redirect/get).
"""

from __future__ import annotations

import falcon

import forwarding

from .pages import BadInput, Page, query_string

FAILED_SHOWN = 50  # failed events listed per destination


class DestinationsPage(Page):
    """GET /ui/destinations: each destination's state, lag, counts, last outcomes, failures."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            destinations = []
            for status in forwarding.list_destinations(self.store):
                failed = forwarding.failed_events(self.store, status["name"], limit=FAILED_SHOWN)
                destinations.append({**status, "failed_events": failed})
            retried = req.get_param("retried")
            self.show(
                req,
                resp,
                "destinations.html",
                destinations=destinations,
                retried=retried,
                queued=req.get_param_as_int("queued") if retried else None,
                shown=FAILED_SHOWN,
            )

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Queue the destination's failed events again (a durable replay job)."""
        with self.errors_as_pages(req, resp):
            name = req.context.form.get("name")
            if not isinstance(name, str) or not name:
                raise BadInput("which destination? the form has no name")
            try:
                queued = forwarding.replay(self.store, name, failed=True)
            except forwarding.ForwardingError as exc:
                raise BadInput(str(exc)) from None
            target = "/ui/destinations?" + query_string({"retried": name, "queued": queued})
            raise falcon.HTTPSeeOther(target + "#destination-" + name)
