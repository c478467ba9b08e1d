"""The asset page's rendered-fragment cache never serves a stale picture."""

from __future__ import annotations

import re

import falcon.testing
import pytest

import projections
from receiver.config import Config
from receiver.http.app import create_app
from receiver.ui import fragments
from store import NewEvent, open_store

from .conftest import CLIP, video_event

RENDERED = re.compile(r"<p class=\"meta small\">Rendered in [0-9.]+ ms\.</p>")


@pytest.fixture
def served(tmp_path):
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    runner = projections.ProjectionRunner(views)

    def send(kind, event_id, request_id, created_at):
        body = video_event(kind, event_id, request_id, created_at, CLIP)
        store.append(
            NewEvent(
                event_id, f"video.transformation.{kind}", created_at, body, "standard-webhooks"
            )
        )
        runner.catch_up()

    def client(now: str | list[str], entries: int | None = None):
        clock = now if isinstance(now, list) else [now]
        saved = fragments.MAX_ENTRIES
        fragments.MAX_ENTRIES = saved if entries is None else entries
        try:
            app = create_app(Config(secrets=("s",)), store, views, now=lambda: clock[0])
        finally:
            fragments.MAX_ENTRIES = saved
        return falcon.testing.TestClient(app)

    yield send, client
    views.close()
    store.close()


def page(client) -> str:
    answer = client.simulate_get("/ui/asset", params={"url": CLIP})
    assert answer.status_code == 200
    return RENDERED.sub("", answer.text)


def test_a_cached_page_equals_a_fresh_render_and_a_new_event_misses(served):
    send, client = served
    send("accepted", "a1", "r1", "2024-01-02T03:00:00.000Z")
    now = "2024-01-02T03:00:05.250Z"
    cached, uncached = client(now), client(now, entries=0)
    first = page(cached)
    assert page(cached) == first == page(uncached)
    assert 'data-status="pending"' in first
    send("ready", "r1e", "r1", "2024-01-02T03:00:09.000Z")
    after = page(cached)
    assert after == page(uncached) != first
    assert 'data-status="ready"' in after and 'data-event-id="r1e"' in after
    # Nothing open before or after: only the transformations tell the two apart.
    send("error", "r2e", "r2", "2024-01-02T03:00:10.000Z")
    assert 'data-event-id="r2e"' in page(cached) == page(uncached)


def test_an_open_transformation_is_redrawn_as_time_passes(served):
    send, client = served
    send("accepted", "a1", "r1", "2024-01-02T03:00:00.000Z")
    clock = ["2024-01-02T03:00:05.000Z"]
    cached = client(clock)
    early = page(cached)
    clock[0] = "2024-01-02T03:16:00.000Z"  # past IKLEDGER_STUCK_AFTER
    late = page(cached)
    assert 'data-status="pending"' in early and 'data-status="stuck"' in late


def test_an_open_picture_is_redrawn_when_now_moves_a_thousandth_of_its_axis():
    """Less than a pixel of change is not a redraw: the key's `now` steps by span / 1000."""
    from datetime import UTC, datetime, timedelta

    from receiver.ui.fragments import FragmentCache

    def key(began: str, now: datetime):
        return FragmentCache._key((b"d", began), now)[0]

    began = "2024-01-02T03:00:00.000Z"
    ten_days = datetime(2024, 1, 12, 3, 0, 30, tzinfo=UTC)  # quantum 1024 s
    assert key(began, ten_days) == key(began, ten_days + timedelta(seconds=1))
    assert key(began, ten_days) != key(began, ten_days + timedelta(seconds=1100))
    quarter_hour = datetime(2024, 1, 2, 3, 15, 0, 250_000, tzinfo=UTC)  # quantum 1 s
    assert key(began, quarter_hour) != key(began, quarter_hour + timedelta(seconds=1))
    assert FragmentCache._key((b"d", None), ten_days)[0] == (b"d", None)  # nothing open
