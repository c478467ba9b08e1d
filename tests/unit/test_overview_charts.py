"""The overview's chart geometry (receiver/ui/charts.py), without a browser."""

from __future__ import annotations

import pytest

from receiver.ui.charts import nice_max, percentile_lines, reason_bars, stacked_bars


def _stats(buckets, bucket="1h"):
    totals = {k: sum(b[k] for b in buckets) for k in ("ready", "error", "stuck")}
    return {
        "bucket": bucket,
        "buckets": buckets,
        "transformations": {**totals, "running": 0},
        "accepted_to_ready_ms": {"count": 0, "p50": None, "p95": None, "p99": None},
    }


def _bucket(start, ready=0, error=0, stuck=0, p50=None, p95=None):
    return {
        "start": start,
        "events": ready + error + stuck,
        "ready": ready,
        "error": error,
        "stuck": stuck,
        "p50_ms": p50,
        "p95_ms": p95,
    }


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (999, 1000)])
def test_the_axis_top_is_a_round_number_at_or_above_the_largest(value, top):
    assert nice_max(value) == top


def test_stacked_segments_are_proportional_and_stack_from_the_axis():
    chart = stacked_bars(
        _stats([_bucket("2024-01-01T00:00:00.000Z", ready=6, error=3, stuck=1),
                _bucket("2024-01-01T01:00:00.000Z", ready=5)])
    )  # fmt: skip
    first, second = chart["bars"]
    heights = {s["key"]: s["height"] for s in first["segments"]}
    assert heights["ready"] == pytest.approx(2 * heights["error"], abs=0.2)
    assert heights["ready"] == pytest.approx(6 * heights["stuck"], abs=0.2)
    ready, error, stuck = first["segments"]
    assert stuck["y"] + stuck["height"] == pytest.approx(error["y"], abs=0.2)
    assert ready["y"] + ready["height"] == pytest.approx(chart["y0"], abs=0.2)
    assert error["y"] + error["height"] == pytest.approx(ready["y"], abs=0.2)
    assert [s["key"] for s in second["segments"]] == ["ready"]  # zero segments left out
    assert first["title"] == "2024-01-01T00:00:00.000Z: 6 ready, 3 error, 1 stuck"
    assert first["label"] == "01-01 00:00" and second["label"] == "01:00"
    assert "11 ready, 3 error, 1 stuck" in chart["label"]


def test_an_empty_range_draws_no_bar_and_says_so():
    chart = stacked_bars(_stats([]))
    assert chart["bars"] == [] and "0 buckets" in chart["label"]
    assert reason_bars({}, what="errors")["label"] == "Errors by reason: none"


def test_reasons_most_first_longest_bar_for_the_most():
    chart = reason_bars({"b": 1, "a": 4, "c": 4}, what="errors")
    assert [r["reason"] for r in chart["rows"]] == ["a", "c", "b"]
    assert chart["rows"][0]["width"] == pytest.approx(4 * chart["rows"][2]["width"], abs=0.2)
    assert chart["rows"][2]["title"] == "b: 1 errors"


def test_percentile_lines_break_where_a_bucket_has_no_duration():
    chart = percentile_lines(
        _stats([_bucket("2024-01-01T00:00:00.000Z", ready=1, p50=1000, p95=4000),
                _bucket("2024-01-01T01:00:00.000Z"),
                _bucket("2024-01-01T02:00:00.000Z", ready=1, p50=2000, p95=2000)])
    )  # fmt: skip
    p50, p95 = chart["series"]
    assert p50["d"].count("M") == 2 and "L" not in p50["d"]  # two lone points, no line across
    assert [p["title"] for p in p95["points"]] == [
        "2024-01-01T00:00:00.000Z: p95 4.0 s",
        "2024-01-01T02:00:00.000Z: p95 2.0 s",
    ]
    assert p95["points"][0]["y"] < p50["points"][0]["y"]  # higher value, higher on the page


def test_empty_buckets_keep_their_slot_up_to_the_range_edges():
    stats = _stats(
        [_bucket("2024-01-01T01:00:00.000Z", ready=1), _bucket("2024-01-01T03:00:00.000Z", error=1)]
    )
    stats.update(since="2024-01-01T00:00:00.000Z", until="2024-01-01T05:00:00.000Z")
    chart = stacked_bars(stats)
    assert [len(b["segments"]) for b in chart["bars"]] == [0, 1, 0, 1, 0]
    assert chart["bars"][0]["title"] == "2024-01-01T00:00:00.000Z: 0 ready, 0 error, 0 stuck"
