"""The timeline picture's geometry, without a browser: `receiver.ui.layout`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from receiver.ui import layout, timeline_svg
from receiver.ui.layout import GUTTER, ROW, TOP, WIDTH, ticks

NOW = "2024-01-02T04:00:00.000Z"
T0 = datetime(2024, 1, 2, 3, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    moment = T0 + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, position: int, seconds: float, event_id: str | None = None) -> dict:
    return {
        "position": position,
        "id": event_id or f"{kind}-{position}",
        "type": f"video.transformation.{kind}",
        "created_at": at(seconds),
    }


def transformation(request_id: str, status: str, events: list[dict], **fields) -> dict:
    """A transformation as `projections.timeline` returns it (the fields layout reads)."""
    times: dict = {"accepted_at": None, "ready_at": None, "error_at": None}
    for e in events:  # the latest of each kind, as the projection keeps it
        times[e["type"].rsplit(".", 1)[1] + "_at"] = e["created_at"]
    return {
        "request_id": request_id,
        "status": status,
        "error_reason": fields.get("reason"),
        "last_at": max(e["created_at"] for e in events),
        "events": sorted(events, key=lambda e: (e["created_at"], e["position"])),
        **times,
    }


def picture(*items: dict, now: str = NOW) -> dict:
    return layout({"asset": "https://x/v.mp4", "transformations": list(items)}, now=now)


def test_a_ready_transformation_is_a_bar_from_accepted_to_ready():
    geometry = picture(
        transformation("r1", "ready", [event("accepted", 1, 0), event("ready", 2, 20)])
    )
    (row,) = geometry["rows"]
    bar = row["bar"]
    assert bar["status"] == "ready" and not bar["clipped"]
    assert GUTTER <= bar["x"] < bar["x"] + bar["width"] <= WIDTH
    marks = row["marks"]
    assert [m["kind"] for m in marks] == ["accepted", "ready"]
    assert marks[0]["x"] == bar["x"] and marks[1]["x"] == pytest.approx(bar["x"] + bar["width"])
    assert all(m["flags"] == [] for m in marks)
    assert "request r1" in bar["title"] and "status ready" in bar["title"]
    assert "took 20.0 s" in bar["title"]
    assert row["y"] == TOP and row["status_text"] == "✓ ready"


def test_out_of_order_delivery_marks_the_late_event():
    # The ready (created later) reached the log first: the accepted arrived late.
    geometry = picture(
        transformation("r1", "ready", [event("ready", 1, 20), event("accepted", 2, 0)])
    )
    marks = {m["kind"]: m for m in geometry["rows"][0]["marks"]}
    assert marks["accepted"]["flags"] == ["late"]
    assert marks["ready"]["flags"] == []
    assert "delivered out of order" in marks["accepted"]["title"]


def test_a_repeated_event_and_a_second_terminal_event_are_marked():
    events = [
        event("accepted", 1, 0),
        event("accepted", 2, 1),  # sent again with another id
        event("ready", 3, 10),
        event("error", 4, 30),  # a second terminal event: it decides the status
    ]
    geometry = picture(transformation("r1", "error", events, reason="encoding_failed"))
    (row,) = geometry["rows"]
    assert [m["flags"] for m in row["marks"]] == [[], ["repeat"], [], ["repeat"]]
    bar, error_mark = row["bar"], row["marks"][3]
    assert bar["status"] == "error"
    assert bar["x"] + bar["width"] == pytest.approx(error_mark["x"])  # ends at the error
    assert "reason encoding_failed" in bar["title"]
    assert len(row["marks"]) == 4  # a mark for every event


def test_stuck_is_open_ended_to_now_in_its_own_style():
    geometry = picture(
        transformation("slow", "accepted", [event("accepted", 1, 0)]),
        transformation("done", "ready", [event("accepted", 2, 0), event("ready", 3, 60)]),
        now=at(70 + 900 + 1),  # past IKLEDGER_STUCK_AFTER's default
    )
    stuck = geometry["rows"][0]["bar"]
    assert stuck["status"] == "stuck" and geometry["rows"][0]["status_text"] == "⚠ stuck"
    # `now` is far beyond the events: the bar runs to the edge, clipped, not to scale.
    assert stuck["clipped"] and stuck["x"] + stuck["width"] == pytest.approx(WIDTH - 30)
    assert "open for" in stuck["title"]
    recent = picture(transformation("slow", "accepted", [event("accepted", 1, 0)]), now=at(5))
    bar = recent["rows"][0]["bar"]
    assert bar["status"] == "pending" and not bar["clipped"]
    assert bar["width"] > 100  # drawn up to now, within the axis


def test_one_event_only_without_accepted_has_marks_but_no_bar():
    geometry = picture(transformation("e", "error", [event("error", 1, 0)], reason="x"))
    (row,) = geometry["rows"]
    assert row["bar"] is None
    assert row["marks"][0]["flags"] == ["no_accepted"]
    assert GUTTER < row["marks"][0]["x"] < WIDTH  # a one-instant axis still has a width
    assert geometry["ticks"]


def test_an_empty_timeline_has_no_rows():
    geometry = picture()
    assert geometry["rows"] == [] and geometry["height"] > TOP


def test_two_hundred_transformations_each_get_a_row_in_order():
    items = [
        transformation(
            f"r{i:03d}",
            "ready" if i % 3 else "error",
            [
                event("accepted", 2 * i + 1, i),
                event("ready" if i % 3 else "error", 2 * i + 2, i + 30),
            ],
        )
        for i in range(200)
    ]
    geometry = picture(*items)
    rows = geometry["rows"]
    assert [r["request_id"] for r in rows] == [f"r{i:03d}" for i in range(200)]
    assert [r["y"] for r in rows] == [TOP + i * ROW for i in range(200)]
    assert geometry["height"] >= TOP + 200 * ROW
    assert sum(len(r["marks"]) for r in rows) == 400
    xs = [r["bar"]["x"] for r in rows]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    assert "200 transformations (67 error, 133 ready)" in geometry["label"]


@pytest.mark.parametrize(
    ("span_ms", "step_ms"),
    [(900, 200), (20_000, 5_000), (50 * 60_000, 600_000), (3 * 86_400_000, 43_200_000)],
)
def test_ticks_are_round_steps_inside_the_span(span_ms, step_ms):
    start = 1_704_164_400_123
    step, marks = ticks(start, start + span_ms)
    assert step == step_ms
    assert all(start <= m <= start + span_ms and m % step == 0 for m in marks)
    assert 2 <= len(marks) <= 8


def test_the_svg_is_well_formed_escaped_and_titled():
    hostile = transformation("<script>alert(1)</script>", "error", [event("error", 1, 0)])
    hostile["error_reason"] = '"><img src=x onerror=alert(1)>'
    svg = timeline_svg(
        {"asset": "https://x/<b>.mp4", "transformations": [hostile]},
        now=NOW,
        link="/ui/event?id=",
    )
    root = ET.fromstring(svg)  # parses: nothing unescaped broke the markup
    assert root.get("role") == "img"
    assert "<script>" not in svg and "<img" not in svg
    assert "&lt;script&gt;" in svg
    ns = "{http://www.w3.org/2000/svg}"
    marks = root.findall(f".//{ns}g[@data-event-id]")
    assert len(marks) == 1 and marks[0].find(f"{ns}title") is not None
    assert root.find(f"{ns}style") is not None  # standalone: its own styles
    assert re.search(r'href="/ui/event\?id=error-1"', svg)


def test_the_axis_names_the_first_day_and_each_new_one():
    late = transformation(
        "r1", "ready", [event("accepted", 1, 18 * 3600), event("ready", 2, 30 * 3600)]
    )  # 2024-01-02 21:00 to 2024-01-03 09:00
    geometry = picture(late, now="2024-01-04T00:00:00Z")
    assert geometry["tick_date"] == "2024-01-02"
    labels = [t["label"] for t in geometry["ticks"]]
    assert any(label.startswith("01-03 ") for label in labels)
    assert sum(label.startswith("01-03 ") for label in labels) == 1


def test_close_repeated_marks_share_one_label():
    events = [event("accepted", 1, 0), event("ready", 2, 20), event("ready", 3, 20.5)]
    events.append(event("ready", 4, 21))
    (row,) = picture(transformation("r", "ready", events))["rows"]
    labels = [m["label"] for m in row["marks"] if m["label"]]
    assert labels == ["×2"]


def test_a_lone_repeated_mark_is_labelled_2nd():
    events = [event("accepted", 1, 0), event("ready", 2, 20), event("ready", 3, 3000)]
    (row,) = picture(transformation("r", "ready", events))["rows"]
    assert [m["label"] for m in row["marks"]] == [None, None, "2nd"]


def test_the_grid_step_reads_as_a_round_unit():
    events = [event("accepted", 1, 0), event("ready", 2, 5 * 3600)]
    geometry = picture(transformation("r", "ready", events), now=at(5 * 3600))
    assert geometry["step"] == "1 h"
    assert "grid every 1 h<" in timeline_svg(
        {"asset": "a", "transformations": [transformation("r", "ready", events)]}, now=at(5 * 3600)
    )


def test_a_ready_row_after_an_error_has_no_reason_as_its_outcome():
    events = [event("accepted", 1, 0), event("error", 2, 10), event("ready", 3, 60)]
    (row,) = picture(transformation("r", "ready", events, reason="encoding_failed"))["rows"]
    assert row["reason"] is None
    assert "reason" not in row["bar"]["title"]
    error_mark = next(m for m in row["marks"] if m["kind"] == "error")
    assert "reason encoding_failed" in error_mark["title"]
