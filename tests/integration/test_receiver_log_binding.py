"""The receiver's side of issue 17 §1: each log its own read models, another log's refused.

The newcomer's commands: a second log given as a URL from the same folder, and read
models of one log handed to another (IKLEDGER_PROJECTIONS_DB), under the CLI and serve.
"""

from __future__ import annotations

import falcon.testing
import httpx
import pytest

from projections import ProjectionRunner, open_projections
from receiver import create_app
from receiver.config import Config
from receiver.runtime.wiring import open_runtime
from store import SQLiteStore
from tests.projections_helpers import video_event
from tests.support import SECRET, free_port, run_cli, serve, wait_for

ASSET = "http://ik.imagekit.io/demo/second.mp4"


def make_log(path, asset: str = ASSET) -> None:
    with SQLiteStore(path) as store:
        store.append_many(
            [
                video_event(f"{path.stem}-1", "accepted", "2026-12-07T10:00:00Z", asset=asset),
                video_event(f"{path.stem}-2", "ready", "2026-12-07T10:01:00Z", asset=asset),
            ]
        )


@pytest.fixture
def two_logs(tmp_path):
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    make_log(first, "http://ik.imagekit.io/demo/first.mp4")
    make_log(second)
    return first, second


def test_serve_hands_its_children_the_read_models_of_its_own_log(tmp_path, monkeypatch):
    # A log given as a URL: the children must be told the file this process chose
    # (beside the log), not a working-directory default of their own.
    log = tmp_path / "other.db"
    make_log(log)
    monkeypatch.chdir(tmp_path)
    runtime = open_runtime(Config(db=f"sqlite:///{log}"), catch_up=None)
    try:
        expected = str(tmp_path / "other.projections.db")
        assert runtime.views.path == expected
        assert runtime.config.child_env({})["IKLEDGER_PROJECTIONS_DB"] == expected
    finally:
        runtime.close()
    assert not (tmp_path / "ikledger.projections.db").exists()


def test_read_models_of_another_log_are_one_error_line_naming_the_file(two_logs):
    first, second = two_logs
    views = str(first.with_name("first.projections.db"))
    assert run_cli("assets", db=first).returncode == 0
    result = run_cli("assets", db=second, env={"IKLEDGER_PROJECTIONS_DB": views})
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and b"Traceback" not in result.stderr, lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and views in lines[0]
    assert "belong to another log" in lines[0] and "ikledger rebuild" in lines[0]
    assert result.stdout == b""


def test_rebuild_adopts_read_models_of_another_log(two_logs):
    first, second = two_logs
    env = {"IKLEDGER_PROJECTIONS_DB": str(first.with_name("first.projections.db"))}
    assert run_cli("assets", db=first).returncode == 0
    rebuilt = run_cli("rebuild", db=second, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr.decode()
    listed = run_cli("assets", "--json", db=second, env=env)
    assert listed.returncode == 0, listed.stderr.decode()
    assert ASSET.encode() in listed.stdout and b"first.mp4" not in listed.stdout


def test_serve_refuses_read_models_of_another_log(two_logs):
    first, second = two_logs
    views = str(first.with_name("first.projections.db"))
    assert run_cli("assets", db=first).returncode == 0
    env = {"IKLEDGER_PROJECTIONS_DB": views, "IMAGEKIT_WEBHOOK_SECRET": SECRET}
    for workers in ("1", "2"):
        args = ("serve", "--port", str(free_port()), "--workers", workers)
        result = run_cli(*args, db=second, env=env)
        errors = [line for line in result.stderr.decode().splitlines() if "Error" in line]
        assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
        assert len(errors) == 1 and errors[0].startswith("Error: ") and views in errors[0]
        assert "belong to another log" in errors[0]


def test_serve_rebuilds_read_models_of_another_log_when_asked(two_logs):
    first, second = two_logs
    views = str(first.with_name("first.projections.db"))
    assert run_cli("assets", db=first).returncode == 0
    env = {"IKLEDGER_PROJECTIONS_DB": views}
    with serve(second, env=env, args=("--workers", "1", "--rebuild-read-models")) as served:
        listed = wait_for(
            lambda: (r := httpx.get(f"{served.base}/assets", timeout=5)).json()["assets"] and r,
            "the rebuild",
        )
        assert [a["asset"] for a in listed.json()["assets"]] == [ASSET]


def test_serve_help_names_the_rebuild_option():
    result = run_cli("serve", "--help")
    assert b"--rebuild-read-models" in result.stdout


def test_log_page_shows_a_checkpoint_ahead_of_the_log_in_red_not_lag_zero(tmp_path):
    log = tmp_path / "log.db"
    make_log(log)
    with SQLiteStore(log) as store, open_projections(store, tmp_path / "v.db") as views:
        ProjectionRunner(views).catch_up()
        with views.write() as conn:  # as a checkpoint moved by another log's events would
            conn.execute("UPDATE projection_meta SET checkpoint = checkpoint + 121")
        client = falcon.testing.TestClient(create_app(Config(), store, views))
        page = client.simulate_get("/ui/log")
        assert page.status_code == 200
        assert '<span class="problem ahead-of-log"' in page.text
        assert "-121 (ahead of the log)" in page.text
