"""The CLI's tables say what the pages say, in the pages' words, within the terminal."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from receiver.cli import cli
from store import NewEvent, SQLiteStore

ASSET = "https://ik.imagekit.io/demo/a-rather-long-folder-name/and-a-long-video-name.mp4"


def video(event_id: str, kind: str, created_at: str, request_id: str) -> NewEvent:
    transformation: dict = {"type": "video-transformation", "options": {"format": "webm"}}
    if kind == "ready":
        transformation["output"] = {"url": f"{ASSET}?tr=f-webm,q-50,w-1280,h-720"}
    if kind == "error":
        transformation["error"] = {"reason": "encoding_failed"}
    body = {
        "type": f"video.transformation.{kind}",
        "id": event_id,
        "created_at": created_at,
        "request": {"x_request_id": request_id, "url": f"{ASSET}?tr=f-webm,q-50"},
        "data": {"asset": {"url": ASSET}, "transformation": transformation},
    }
    if kind == "ready":
        body["timings"] = {"download_duration": 61_000, "encoding_duration": 1_200_000}
    return NewEvent(event_id, body["type"], created_at, orjson.dumps(body), "standard-webhooks")


@pytest.fixture
def log(db_path):
    with SQLiteStore(db_path) as store:
        store.append_many(
            [
                video("a1", "accepted", "2024-01-02T03:00:00.000Z", "req-slow"),
                video("r1", "ready", "2024-01-02T03:24:51.000Z", "req-slow"),
                video("a2", "accepted", "2024-01-02T03:00:00.000Z", "req-failed"),
                video("e2", "error", "2024-01-02T03:02:05.000Z", "req-failed"),
                video("a3", "accepted", "2024-01-02T03:00:00.000Z", "req-stuck"),
            ]
        )
    return db_path


def invoke(log, *args, columns: int = 120) -> str:
    result = CliRunner().invoke(
        cli, [*args, "--db", str(log)], env={"COLUMNS": str(columns)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def block(output: str, request_id: str) -> str:
    """A row and the lines below it that belong to it (indented)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if request_id in line)
    while start > 0 and lines[start].startswith(" "):  # the request spilled below its row
        start -= 1
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return "\n".join(lines[start:end])


def test_durations_read_as_on_the_pages(log):
    slow = block(invoke(log, "timeline", ASSET), "req-slow")
    assert "24 min 51 s" in slow and "1 min 1 s" in slow and "20 min 0 s" in slow


def test_an_error_row_shows_its_accepted_to_error_time(log):
    assert "2 min 5 s" in block(invoke(log, "timeline", ASSET), "req-failed")


def test_a_stuck_row_has_a_stuck_badge_and_no_request_url(log):
    for args in (("timeline", ASSET), ("failures",)):
        stuck = block(invoke(log, *args), "req-stuck")
        assert stuck.startswith("stuck") and "?tr=" not in stuck, stuck


@pytest.mark.parametrize("columns", [80, 100, 120, 200])
@pytest.mark.parametrize("command", [("timeline", ASSET), ("failures",), ("assets",)])
def test_tables_fit_the_terminal(log, command, columns):
    output = invoke(log, *command, columns=columns)
    limit = max(80, min(columns, 120))
    table = output.splitlines()[1:] if command[0] == "timeline" else output.splitlines()
    assert all(len(line) <= limit for line in table), output
    assert "https://ik.imagekit.io/demo/" in output  # shortened in the middle at most
    if command[0] != "assets":
        assert "req-failed" in output and "encoding_failed" in output


def test_wide_shows_every_column_on_one_line(log):
    output = invoke(log, "timeline", ASSET, "--wide", columns=80)
    header, *rows = output.splitlines()[1:]
    assert header.split()[:4] == ["STATUS", "KIND", "ACCEPTED", "READY/ERROR"]
    assert len(rows) == 3
    assert any("?tr=f-webm,q-50,w-1280,h-720" in row and "req-slow" in row for row in rows)
