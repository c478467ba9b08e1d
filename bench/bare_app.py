"""The baseline server: Falcon under waitress, reading and parsing the body, nothing else.

`POST /webhook` reads the raw body once, parses it with the standard library's `json`
(as the receiver does) and answers 200 with a small JSON document, without verifying,
validating or storing anything. `GET /timeline` answers a fixed small document, the
floor for the query benchmark. Run as `python -m bench.bare_app --port P --threads N`.
"""

from __future__ import annotations

import argparse
import json

import falcon
import waitress


class Webhook:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.bounded_stream.read()
        document = json.loads(body)
        resp.media = {"received": True, "id": document.get("id"), "position": 0, "duplicate": False}


class Fixed:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"asset": req.get_param("asset"), "transformations": []}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/webhook", Webhook())
    app.add_route("/timeline", Fixed())
    app.add_route("/healthz", Fixed())
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    waitress.serve(
        create_app(), host="127.0.0.1", port=args.port, threads=args.threads, ident="bare", _quiet=True
    )


if __name__ == "__main__":
    main()
