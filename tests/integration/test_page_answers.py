"""The asset page tells what the API tells: the outcome of the row's status, stuck rows
badged, attempts, and only http(s) output URLs as links (page and picture)."""

from __future__ import annotations

import re

import falcon.testing
import orjson
import pytest

import projections
from receiver import Config, create_app
from receiver.ui import timeline_svg
from store import NewEvent
from tests.support import SECRET

ASSET = "https://ik.imagekit.io/demo/clip.mp4"


def video(event_id: str, kind: str, created_at: str, request_id: str, **fields) -> NewEvent:
    transformation: dict = {"type": "video-transformation", "options": {"format": "webm"}}
    if kind == "ready":
        transformation["output"] = {"url": fields.get("output", f"{ASSET}/ik-video.mp4")}
    if kind == "error":
        transformation["error"] = {"reason": fields.get("reason", "encoding_failed")}
    body = {
        "type": f"video.transformation.{kind}",
        "id": event_id,
        "created_at": created_at,
        "request": {"x_request_id": request_id, "url": f"{ASSET}?tr=f-webm"},
        "data": {"asset": {"url": ASSET}, "transformation": transformation},
    }
    return NewEvent(event_id, body["type"], created_at, orjson.dumps(body), "standard-webhooks")


@pytest.fixture
def page(store, tmp_path):
    store.append_many(
        [
            # errored, then retried by ImageKit and ready: the row's outcome is the output
            video("a1", "accepted", "2024-01-02T03:00:00.000Z", "req-retried"),
            video("e1", "error", "2024-01-02T03:00:10.000Z", "req-retried"),
            video("r1", "ready", "2024-01-02T03:01:00.000Z", "req-retried"),
            # a hostile output URL
            video("a2", "accepted", "2024-01-02T03:00:01.000Z", "req-hostile"),
            video(
                "r2",
                "ready",
                "2024-01-02T03:00:30.000Z",
                "req-hostile",
                output="javascript:alert(1)",
            ),
            # accepted long ago, nothing since: stuck
            video("a3", "accepted", "2024-01-02T03:00:02.000Z", "req-stuck"),
        ]
    )
    views = projections.open_projections(store, tmp_path / "views.db")
    projections.ProjectionRunner(views).catch_up()
    app = create_app(Config(secrets=(SECRET,)), store, views)
    answer = falcon.testing.TestClient(app).simulate_get("/ui/asset", params={"url": ASSET})
    assert answer.status_code == 200
    yield answer.text
    views.close()


def row(html: str, request_id: str) -> str:
    found = re.search(rf'<tr id="t-\d+">(?:(?!</tr>).)*?{request_id}.*?</tr>', html, re.DOTALL)
    assert found, request_id
    return found.group(0)


def test_a_transformation_ready_after_an_error_shows_its_output(page):
    retried = row(page, "req-retried")
    assert "ik-video.mp4" in retried
    assert "encoding_failed" not in retried
    assert '<span class="status status-ready">ready</span>' in retried


def test_the_earlier_error_stays_in_its_mark(page):
    marks = re.findall(r'data-event-id="e1".*?<title>(.*?)</title>', page, re.DOTALL)
    assert marks and "reason encoding_failed" in marks[0]


def test_an_output_url_that_is_not_http_is_never_a_link(page):
    assert 'href="javascript:' not in page
    assert "javascript:alert(1)" in row(page, "req-hostile")  # shown as text


def test_a_stuck_row_carries_a_stuck_badge(page):
    assert '<span class="status status-stuck">stuck</span>' in row(page, "req-stuck")


def test_the_fields_table_has_an_attempts_column(page):
    assert '<th class="num">Attempts</th>' in page


def test_the_standalone_picture_links_no_output_url():
    timeline = {
        "asset": ASSET,
        "transformations": [
            {
                "request_id": "r",
                "status": "ready",
                "accepted_at": "2024-01-02T03:00:00.000Z",
                "ready_at": "2024-01-02T03:00:05.000Z",
                "error_at": None,
                "output_url": "javascript:alert(1)",
                "last_at": "2024-01-02T03:00:05.000Z",
                "events": [],
            }
        ],
    }
    svg = timeline_svg(timeline, now="2024-01-02T03:01:00.000Z", link="/ui/event?id=")
    assert "javascript:" not in svg
