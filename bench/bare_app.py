"""The baseline server: Falcon under waitress, reading and parsing the body, nothing else.

`POST /webhook` reads the raw body once, parses it with the standard library's `json`
(as the receiver does) and answers 200 with a small JSON document, without verifying,
validating or storing anything. `GET /timeline` answers a fixed small document, the
floor for the query benchmark; with `--answers FILE` it sends instead the bytes
recorded from ikledger for each asset (same body, same content type), so the two
servers' answers differ only in how they are produced. Run as
`python -m bench.bare_app --port P --threads N [--answers FILE]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


class Recorded:
    """The recorded answer for `?asset=`, looked up in a dict: no work but sending."""

    def __init__(self, answers: dict[str, tuple[str, bytes]]):
        self.answers = answers

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        content_type, body = self.answers[req.get_param("asset")]
        resp.content_type = content_type
        resp.data = body


def write_answers(path: Path, answers: dict[str, tuple[str, bytes]]) -> None:
    """Save {asset: (content type, body)} for `--answers`."""
    path.write_text(json.dumps({a: [ct, body.decode()] for a, (ct, body) in answers.items()}))


def read_answers(path: Path) -> dict[str, tuple[str, bytes]]:
    return {a: (ct, body.encode()) for a, (ct, body) in json.loads(path.read_text()).items()}


def create_app(answers: dict[str, tuple[str, bytes]] | None = None) -> falcon.App:
    app = falcon.App()
    app.add_route("/webhook", Webhook())
    app.add_route("/timeline", Recorded(answers) if answers else Fixed())
    app.add_route("/healthz", Fixed())
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--answers", type=Path, help="recorded GET /timeline answers (JSON)")
    args = parser.parse_args()
    answers = read_answers(args.answers) if args.answers else None
    waitress.serve(
        create_app(answers), host="127.0.0.1", port=args.port, threads=args.threads, ident="bare",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
