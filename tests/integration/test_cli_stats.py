"""`ikledger stats`: the numbers GET /stats answers, in the terminal and as JSON."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

import projections
from receiver.cli import cli
from store import SQLiteStore
from tests.integration.test_overview_read_models import _hand_fixture


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def filled(db_path):
    with SQLiteStore(db_path) as store:
        store.append_many(_hand_fixture())
    return db_path


def test_stats_json_is_what_the_api_answers(filled):
    result = invoke("stats", "--json", "--bucket", "1d", "--db", str(filled))
    assert result.exit_code == 0
    got = json.loads(result.output)
    with (
        SQLiteStore(filled) as store,
        projections.open_projections(store, filled.with_suffix(".projections.db")) as views,
    ):
        assert got == projections.stats(views, bucket="1d")  # now is long after 2024
    assert got["events_by_type"] == dict(Counter(e.type for e in _hand_fixture()))
    assert got["transformations"] == {"ready": 2, "error": 1, "stuck": 5, "running": 0}


def test_stats_text_shows_totals_types_reasons_and_buckets(filled):
    args = ("--since", "2024-01-01T00:00:00Z", "--until", "2024-01-01T01:00:00Z")
    out = invoke("stats", *args, "--db", str(filled)).output
    assert "from 2024-01-01 00:00:00.000 to 2024-01-01 01:00:00.000, by 1h" in out
    assert "ready 2  error 1  stuck 5  running 0" in out
    # 2 and 10 minutes exactly; the histogram's values are within 1 % (0.27 % and 0.13 %)
    assert "p50 2 min 0 s  p95 9 min 59 s  p99 9 min 59 s" in out
    assert "download_failed" in out and "brand.new.type" not in out  # 02:10 is out of range


@pytest.mark.parametrize(
    ("args", "named"), [(("--bucket", "1w"), "'1w'"), (("--since", "last tuesday"), "ISO-8601")]
)
def test_stats_mistakes_are_one_line_and_exit_2(filled, args, named):
    result = invoke("stats", *args, "--db", str(filled))
    assert result.exit_code == 2 and named in result.output
    assert "Traceback" not in result.output
