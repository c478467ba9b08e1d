"""`ikledger destinations …` and `ikledger replay` over a real log (click's CliRunner)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from receiver.cli import cli
from store import SQLiteStore
from tests.support import new_event

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64


def invoke(db, *args):
    return CliRunner().invoke(cli, [*args[:2], "--db", str(db), *args[2:]], catch_exceptions=False)


@pytest.fixture
def logged(db_path):
    with SQLiteStore(db_path) as store:
        for i in range(3):
            store.append(new_event(f"evt-{i}"))
    return db_path


def test_add_show_list_pause_resume_remove(logged):
    added = invoke(
        logged,
        "destinations",
        "add",
        "app",
        "http://u:pw@127.0.0.1:9000/hook",
        "--secret",
        SECRET,
        "--from",
        "start",
        "--types",
        "video.*",
    )
    assert added.exit_code == 0, added.output
    shown = invoke(logged, "destinations", "show", "app", "--json")
    status = json.loads(shown.output)
    assert {"name", "url", "paused", "delivered", "pending", "failed", "lag_events"} <= set(status)
    assert status["url"] == "http://127.0.0.1:9000/hook"  # credentials never shown
    assert status["lag_events"] == 3 and status["paused"] is False
    assert invoke(logged, "destinations", "pause", "app").exit_code == 0
    assert json.loads(invoke(logged, "destinations", "list", "--json").output)[0]["paused"]
    assert invoke(logged, "destinations", "resume", "app").exit_code == 0
    text = invoke(logged, "destinations", "show", "app").output
    assert "per asset" in text and "ok" in text
    listed = invoke(logged, "destinations", "list").output
    assert "app" in listed and "127.0.0.1:9000" in listed
    assert invoke(logged, "destinations", "remove", "app").exit_code == 0
    assert json.loads(invoke(logged, "destinations", "list", "--json").output) == []


def test_the_secret_is_printed_nowhere(logged):
    outputs = [
        invoke(logged, "destinations", "add", "app", "http://127.0.0.1:9/", "--secret", SECRET),
        invoke(logged, "destinations", "add", "app", "http://127.0.0.1:9/", "--secret", SECRET),
        invoke(logged, "destinations", "show", "app"),
        invoke(logged, "destinations", "show", "app", "--json"),
        invoke(logged, "destinations", "list"),
        invoke(logged, "destinations", "list", "--json"),
    ]
    for result in outputs:
        assert SECRET[6:] not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "app", "ftp://127.0.0.1/x"), "http:// or https://"),
        (("add", "app", "http://127.0.0.1/x", "--retry-schedule", "5s,soon"), "not a duration"),
        (("add", "app", "http://127.0.0.1/x", "--secret", "hunter2-secret"), "whsec_"),
        (("show", "nobody"), "no destination named 'nobody'"),
        (("pause", "nobody"), "nobody"),
        (("remove", "nobody"), "nobody"),
    ],
)
def test_bad_configuration_is_one_error_line(logged, args, message):
    result = invoke(logged, "destinations", *args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "hunter2" not in result.output


def test_replay_counts_and_queues(logged):
    invoke(logged, "destinations", "add", "app", "http://127.0.0.1:9/hook")
    dry = invoke(logged, "replay", "app", "--since", "7d", "--dry-run")
    assert dry.exit_code == 0 and dry.output.strip() == "would queue 3 events for app"
    one = invoke(logged, "replay", "app", "--event", "evt-1", "--rate", "5")
    assert one.output.strip() == "queued 1 events for app"
    status = json.loads(invoke(logged, "destinations", "show", "app", "--json").output)
    assert status["pending"] == 1


def test_replay_of_an_unknown_destination_or_a_bad_time_is_an_error(logged):
    invoke(logged, "destinations", "add", "app", "http://127.0.0.1:9/hook")
    unknown = invoke(logged, "replay", "nobody")
    assert unknown.exit_code == 1 and unknown.output.startswith("Error: ")
    # a time no command reads is a usage error, with the text every command gives
    bad_time = invoke(logged, "replay", "app", "--since", "yesterday")
    assert bad_time.exit_code == 2 and "Error: not a time: 'yesterday'" in bad_time.output
