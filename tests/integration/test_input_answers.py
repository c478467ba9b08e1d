"""Inputs that used to crash or mislead: times out of the calendar, one reading of times
everywhere, and CLI answers that say what was asked."""

from __future__ import annotations

import json
from datetime import datetime

import falcon.testing
import pytest
from click.testing import CliRunner

import projections
from receiver import Config, create_app
from receiver.cli import cli
from receiver.ingest.validation import parse_event
from store import NewEvent, SQLiteStore
from tests.support import SECRET, payload, payload_names, signed

SAMPLE = "http://ik.imagekit.io/demo/sample-video.mp4"
OVERFLOWING = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


@pytest.fixture
def client(store, views):
    app = create_app(Config(secrets=(SECRET,)), store, views)  # the real clock, as served
    client = falcon.testing.TestClient(app)
    for name in payload_names():
        body = payload(name)
        assert client.simulate_post("/webhook", body=body, headers=signed(body)).status_code == 200
    projections.ProjectionRunner(views).catch_up()
    return client


@pytest.fixture
def filled(db_path):
    with SQLiteStore(db_path) as store:
        for name in payload_names():
            event = parse_event(payload(name))
            store.append(
                NewEvent(event.id, event.type, event.created_at, payload(name), "standard-webhooks")
            )
    return db_path


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("as_of", OVERFLOWING)
def test_a_timeline_as_of_a_time_out_of_range_is_400_invalid_query(client, as_of):
    result = client.simulate_get("/timeline", params={"asset": SAMPLE, "as_of": as_of})
    assert result.status_code == 400 and result.json["code"] == "invalid_query"
    assert "out of range" in result.json["description"]


@pytest.mark.parametrize("as_of", OVERFLOWING)
def test_the_asset_page_as_of_a_time_out_of_range_is_an_html_400(client, as_of):
    result = client.simulate_get("/ui/asset", params={"url": SAMPLE, "as_of": as_of})
    assert result.status_code == 400
    assert result.headers["content-type"].startswith("text/html")
    assert "out of range" in result.text


def test_the_cli_timeline_as_of_a_time_out_of_range_is_one_error_line(filled):
    result = invoke("timeline", SAMPLE, "--as-of", OVERFLOWING[0], "--db", str(filled))
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1 and "out of range" in errors[0]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/assets", "since"),
        ("/transformations", "since"),
        ("/events", "since"),
        ("/ui", "since"),
        ("/ui/asset", "as_of"),
    ],
)
def test_every_route_reads_times_alike(client, path, name):
    params = {"url": SAMPLE} if path == "/ui/asset" else {}
    for good in ("2021-01-01T00:00:00Z", "2021-01-01", "90m", "24h", "7d"):
        answer = client.simulate_get(path, params={**params, name: good})
        assert answer.status_code == 200, (path, good, answer.text)
    refused = client.simulate_get(path, params={**params, name: "last tuesday"})
    assert refused.status_code == 400
    assert "use an ISO-8601 time (2026-12-07T19:00:00Z), a date" in refused.text


def test_relative_since_counts_back_from_the_servers_now(client):
    # 7d back from now reaches no event of the examples (2021..2024); 99999d all of them.
    for path, key in (("/assets", "assets"), ("/transformations", "transformations")):
        assert client.simulate_get(path, params={"since": "7d"}).json[key] == []
        assert client.simulate_get(path, params={"since": "99999d"}).json[key]


@pytest.mark.parametrize(
    "args",
    [
        ("events", "--since"),
        ("events", "--until"),
        ("assets", "--since"),
        ("timeline", SAMPLE, "--as-of"),
    ],
)
def test_the_cli_reads_times_alike(filled, args):
    for good in ("2021-01-01T00:00:00Z", "2021-01-01", "24h"):
        assert invoke(*args, good, "--db", str(filled)).exit_code == 0, good
    refused = invoke(*args, "last tuesday", "--db", str(filled))
    assert refused.exit_code == 2
    assert "use an ISO-8601 time (2026-12-07T19:00:00Z), a date" in refused.output


def test_events_with_a_bad_time_prints_no_table_header(filled):
    result = invoke("events", "--since", "garbage", "--db", str(filled))
    assert result.exit_code == 2 and "POSITION" not in result.output


def test_failures_with_an_unknown_reason_says_so(filled):
    result = invoke("failures", "--reason", "nope", "--db", str(filled))
    assert "no transformation has the reason 'nope'" in result.output
    assert "no failing or stuck" not in result.output


def test_the_quick_starts_events_have_consistent_timings():
    from receiver.cli.trigger import build_event, load_template

    sent = 1_800_000_000.0
    accepted = json.loads(build_event(load_template("video.transformation.accepted"), now=sent))
    ready = json.loads(build_event(load_template("video.transformation.ready"), now=sent + 0.2))
    took = datetime.fromisoformat(ready["created_at"]) - datetime.fromisoformat(
        accepted["created_at"]
    )
    spent = ready["timings"]["download_duration"] + ready["timings"]["encoding_duration"]
    assert took.total_seconds() * 1000 >= spent
    assert datetime.fromisoformat(ready["created_at"]).timestamp() == pytest.approx(sent + 0.2)
