"""Timeline zoom: `layout(..., window=(start, end))` makes far-apart transformations bars again."""

from __future__ import annotations

import pytest

from receiver.ui import layout, timeline_svg
from receiver.ui.layout import GUTTER, RIGHT, WIDTH

from .test_timeline_layout import at, event, transformation

DAY = 86_400
NOW = at(5 * DAY)
# A 20-second transformation on day 0, a 30-second one on day 3, and one spanning both.
SHORT = transformation("short", "ready", [event("accepted", 1, 0), event("ready", 2, 20)])
LATER = transformation(
    "later", "ready", [event("accepted", 3, 3 * DAY), event("ready", 4, 3 * DAY + 30)]
)
LONG = transformation("long", "error", [event("accepted", 5, 10), event("error", 6, 3 * DAY + 5)])
TIMELINE = {"asset": "https://x/v.mp4", "transformations": [SHORT, LATER, LONG]}


def _bars(geometry) -> dict:
    return {row["request_id"]: row["bar"] for row in geometry["rows"]}


def test_without_a_window_a_short_transformation_days_away_is_a_dot():
    bars = _bars(layout(TIMELINE, now=NOW))
    assert bars["short"]["width"] == 2.0  # the minimum: 20 s of three days


def test_a_window_spans_the_axis_and_makes_it_a_bar_again():
    geometry = layout(TIMELINE, now=NOW, window=(at(-10), at(50)))
    bars = _bars(geometry)
    assert set(bars) == {"short", "long"}  # "later" has nothing in the window: no row
    assert bars["short"]["x"] == pytest.approx(GUTTER + (WIDTH - RIGHT - GUTTER) / 6, abs=0.2)
    assert bars["short"]["width"] == pytest.approx((WIDTH - RIGHT - GUTTER) / 3, abs=0.2)
    assert not bars["short"]["clipped"]
    assert bars["long"]["clipped"]  # it ends days after the window
    assert bars["long"]["x"] + bars["long"]["width"] == pytest.approx(WIDTH - RIGHT, abs=0.2)
    marks = [m["event_id"] for row in geometry["rows"] for m in row["marks"]]
    assert marks == ["accepted-1", "ready-2", "accepted-5"]  # error-6 is outside
    assert geometry["window"] == (at(-10), at(50))
    assert "2 transformations of 3 in the window" in geometry["label"]


def test_a_bar_that_starts_before_the_window_is_cut_at_its_left_edge():
    bars = _bars(layout(TIMELINE, now=NOW, window=(at(DAY), at(4 * DAY))))
    assert set(bars) == {"later", "long"}
    assert bars["long"]["x"] == GUTTER and bars["long"]["clipped"]


def test_a_window_must_go_forward():
    with pytest.raises(ValueError, match="before its end"):
        layout(TIMELINE, now=NOW, window=(at(50), at(10)))


def test_axis_labels_link_to_a_zoom_around_them_when_asked():
    svg = timeline_svg(TIMELINE, now=NOW, zoom="/ui/asset?url=x", standalone=False)
    assert svg.count('class="zoom-link"') == len(layout(TIMELINE, now=NOW)["ticks"]) > 0
    assert "/ui/asset?url=x&amp;from=" in svg
    assert 'class="zoom-link"' not in timeline_svg(TIMELINE, now=NOW)  # a file: no links
