"""A real `ikledger serve` with a read token over a log filled by signed deliveries."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import browser as fixtures
from tests.support import live_server, signed

# The browser fixtures, shared with any other browser tests.
browser, page, problems = fixtures.browser, fixtures.page, fixtures.problems

TOKEN = "ui-test-read-token"
CLIP = "https://ik.imagekit.io/demo/clip.mp4"
OTHER = "https://ik.imagekit.io/demo/other.mp4"


def video_event(kind: str, event_id: str, request_id: str, created_at: str, asset: str, **data):
    """A video event shaped like ImageKit's documented examples."""
    transformation: dict = {
        "type": "video-transformation",
        "options": {"format": "webm", "quality": 50, "video_codec": "vp9"},
    }
    body: dict = {
        "type": f"video.transformation.{kind}",
        "id": event_id,
        "created_at": created_at,
        "request": {"x_request_id": request_id, "url": f"{asset}?tr=f-webm,q-50"},
        "data": {"asset": {"url": asset}, "transformation": transformation},
    }
    if kind == "ready":
        transformation["output"] = {
            "url": f"{asset}/ik-video.mp4?tr=f-webm,q-50",
            "video_metadata": {"duration": 12.5, "width": 1280, "height": 720, "bitrate": 812},
        }
        body["timings"] = {"download_duration": 1800, "encoding_duration": 9400}
    if kind == "error":
        transformation["error"] = {"reason": data.get("reason", "encoding_failed")}
    return json.dumps(body, indent=1).encode()


# (kind, event id, request id, created_at, asset, extra), in the order they are DELIVERED.
DELIVERIES = [
    ("accepted", "ev-a1", "req-ready", "2024-01-02T03:00:00.000Z", CLIP, {}),
    # Delivered before the accepted of its transformation: out of order.
    ("ready", "ev-r2", "req-late", "2024-01-02T03:00:40.000Z", CLIP, {}),
    ("accepted", "ev-a2", "req-late", "2024-01-02T03:00:05.000Z", CLIP, {}),
    ("ready", "ev-r1", "req-ready", "2024-01-02T03:00:21.500Z", CLIP, {}),
    ("accepted", "ev-a3", "req-error", "2024-01-02T03:00:08.000Z", CLIP, {}),
    (
        "error",
        "ev-e3",
        "req-error",
        "2024-01-02T03:00:31.000Z",
        CLIP,
        {"reason": "encoding_failed"},
    ),
    # Only an error, no accepted.
    (
        "error",
        "ev-e4",
        "req-orphan",
        "2024-01-02T03:00:12.000Z",
        CLIP,
        {"reason": "download_failed"},
    ),
    # Two terminal events: ready, then a later error.
    ("accepted", "ev-a5", "req-twice", "2024-01-02T03:00:15.000Z", CLIP, {}),
    ("ready", "ev-r5", "req-twice", "2024-01-02T03:00:33.000Z", CLIP, {}),
    (
        "error",
        "ev-e5",
        "req-twice",
        "2024-01-02T03:00:44.000Z",
        CLIP,
        {"reason": "internal_server_error"},
    ),
    # Accepted long ago and nothing since: stuck.
    ("accepted", "ev-a6", "req-stuck", "2024-01-02T03:00:25.000Z", CLIP, {}),
    ("accepted", "ev-o1", "req-other", "2024-01-03T10:00:00.000Z", OTHER, {}),
    ("ready", "ev-o2", "req-other", "2024-01-03T10:00:09.000Z", OTHER, {}),
]
EXPECTED_STATUS = {
    "req-ready": "ready",
    "req-late": "ready",
    "req-error": "error",
    "req-orphan": "error",
    "req-twice": "error",
    "req-stuck": "stuck",
}


@dataclass
class Ledger:
    base: str
    bodies: dict[str, bytes]
    db: Path

    def url(self, path: str) -> str:
        return self.base + path


def _post(base: str, body: bytes) -> dict:
    answer = httpx.post(f"{base}/webhook", content=body, headers=signed(body), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """The server, with every DELIVERY sent, one redelivered, one conflicting; read models current."""
    db = tmp_path_factory.mktemp("ui") / "ikledger.db"
    bodies = {}
    with live_server(db, env={"IKLEDGER_READ_TOKEN": TOKEN}) as base:
        for kind, event_id, request_id, created_at, asset, extra in DELIVERIES:
            bodies[event_id] = video_event(kind, event_id, request_id, created_at, asset, **extra)
            _post(base, bodies[event_id])
        assert _post(base, bodies["ev-r1"])["duplicate"] is True
        conflicting = bodies["ev-e3"].replace(b"encoding_failed", b"download_failed")
        assert _post(base, conflicting)["duplicate"] is True
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 10
        while True:
            status = httpx.get(f"{base}/healthz", timeout=5).json().get("projections", [])
            if status and all(p["lag"] == 0 for p in status):
                break
            assert time.monotonic() < deadline, f"read models did not catch up: {status}"
            time.sleep(0.05)
        assert httpx.get(f"{base}/assets", headers=auth, timeout=5).status_code == 200
        yield Ledger(base, bodies, db)


def log_in(page, ledger: Ledger, target: str = "/ui") -> None:
    page.goto(ledger.url(target))
    assert "/ui/login" in page.url
    page.fill("input[name=token]", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url(lambda url: "/ui/login" not in url)


@pytest.fixture
def signed_in(page, ledger):
    log_in(page, ledger)
    return page
