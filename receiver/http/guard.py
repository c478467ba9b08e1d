"""What `get_app()` checks per request, since it cannot see where its server binds.

`ikledger serve` refuses to bind a public address without IKLEDGER_READ_TOKEN. An
app served by another WSGI server (gunicorn, uWSGI…) never learns its bind address,
so without a token it checks each request instead: the query API and the pages answer
only peers on the loopback interface (`REMOTE_ADDR`); `/webhook` (signed), `/healthz`,
`/metrics` and `/openapi.json` stay open, as they are under `serve`.
"""

from __future__ import annotations

import falcon

from receiver.config import is_loopback

from .errors import coded

OPEN_PATHS = ("/webhook", "/healthz", "/metrics", "/openapi.json")


class LoopbackOnly:
    """Middleware: 403 `token_required` for a non-loopback peer outside OPEN_PATHS."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in OPEN_PATHS or is_loopback(req.remote_addr or ""):
            return
        raise coded(
            falcon.HTTPForbidden,
            "token_required",
            "this receiver has no IKLEDGER_READ_TOKEN, so its query API and pages answer "
            "only on 127.0.0.1; set a read token to serve them to the network",
        )
