"""`ikledger trigger`: sign a realistic event and POST it as ImageKit would.

Payloads ship in `receiver/cli/payloads/`: the seven bodies of ImageKit's documentation
(video.transformation.*, upload.*) verbatim, and the file, file-version and folder
events built from the fields of ImageKit's SDK models (the docs show no example).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from receiver.ingest.signatures import sign_legacy, sign_standard


class TriggerError(Exception):
    """The event could not be built or delivered; the message says why."""


def template_names() -> list[str]:
    """Event types that have a shipped template, sorted."""
    folder = resources.files("receiver.cli") / "payloads"
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def load_template(event_type: str) -> dict:
    path = resources.files("receiver.cli") / "payloads" / f"{event_type}.json"
    if not path.is_file():
        raise TriggerError(
            f"no template for {event_type!r}; known types: {', '.join(template_names())} "
            "(or give the path of a JSON file)"
        )
    return json.loads(path.read_text())


def build_event(
    template: dict,
    *,
    now: float,
    asset: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """A fresh event from a template: new id and created_at, optionally another asset.

    For video events the asset URL is replaced everywhere it appears (the source, the
    requested URL and the output keep their query strings); `request_id` correlates
    an `accepted` with its `ready` or `error`. An `accepted` is dated `accepted_lead()`
    before `now`, so a `ready` sent after it never took less than its own `timings`.
    """
    event = json.loads(json.dumps(template))
    event["id"] = str(uuid.uuid4())
    if event.get("type") == "video.transformation.accepted":
        now -= accepted_lead()
    event["created_at"] = (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    request = event.get("request")
    if isinstance(request, dict):
        request["x_request_id"] = request_id or str(uuid.uuid4())
    data_asset = event.get("data", {}).get("asset")
    if asset and isinstance(data_asset, dict):
        old = data_asset.get("url", "")
        data_asset["url"] = asset
        if isinstance(request, dict) and isinstance(request.get("url"), str):
            request["url"] = request["url"].replace(old, asset, 1)
        output = event["data"].get("transformation", {}).get("output")
        if isinstance(output, dict) and isinstance(output.get("url"), str):
            output["url"] = output["url"].replace(old, asset, 1)
    return (json.dumps(event, indent=2) + "\n").encode()


def accepted_lead() -> float:
    """Seconds between the documented `accepted` and `ready` examples (13.242 s).

    The ready template says ImageKit spent 2.7 s downloading and 10.2 s encoding; a
    fresh `ready` is dated when it is sent, moments after the fresh `accepted`, so the
    accepted is dated this much earlier: TOTAL is never less than DOWNLOAD + ENCODING.
    """
    accepted = load_template("video.transformation.accepted")["created_at"]
    ready = load_template("video.transformation.ready")["created_at"]
    span = datetime.fromisoformat(ready) - datetime.fromisoformat(accepted)
    return span.total_seconds()


def event_from(source: str, *, now: float, asset: str | None, request_id: str | None) -> bytes:
    """The body for `source`: an event type with a template, or a JSON file sent as is."""
    path = Path(source)
    if path.suffix == ".json" or path.exists():
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TriggerError(f"cannot read {source}: {exc.strerror}") from None
    return build_event(load_template(source), now=now, asset=asset, request_id=request_id)


@dataclass(frozen=True)
class Delivery:
    status: int
    body: str


def deliver(
    url: str, body: bytes, secret: str, *, scheme: str = "standard", now: float | None = None
) -> Delivery:
    """POST a signed body; returns the receiver's status and answer (any status)."""
    now = time.time() if now is None else now
    if scheme == "standard":
        headers = sign_standard(secret, f"msg_{uuid.uuid4()}", int(now), body)
    else:
        headers = sign_legacy(secret, int(now * 1000), body)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "ikledger-trigger", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Delivery(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return Delivery(exc.code, exc.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TriggerError(f"cannot reach {url}: {reason}") from None
