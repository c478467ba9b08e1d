"""The receiver's side of issue 17 §2: a damaged log or read-model file is loud.

The newcomer's damage: a copy of a log of a few hundred video events with 8 KiB in
the middle overwritten by garbage, then `ikledger failures/assets/timeline`, `/healthz`,
`/ui`, a new webhook and `serve`.
"""

from __future__ import annotations

import random
import shutil

import falcon.testing
import pytest

from projections import ProjectionRunner, open_projections
from receiver import Config, create_app
from receiver.cli import tables
from store import SQLiteStore, StoreCorrupt
from tests.projections_helpers import video_event
from tests.support import SECRET, event_body, free_port, run_cli, signed

EVENTS = 400
ASSET = "http://ik.imagekit.io/demo/v3.mp4"


def damage(path, *, size: int = 8192, seed: int = 17) -> None:
    """Overwrite `size` bytes in the middle of the file with garbage (always the same)."""
    length = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(length // 2)
        file.write(random.Random(seed).randbytes(size))


@pytest.fixture(scope="module")
def sound_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("sound") / "log.db"
    kinds = ("accepted", "ready", "error")
    with SQLiteStore(path) as store:
        store.append_many(
            [
                video_event(
                    f"evt-{n:04d}",
                    kinds[n % 3],
                    f"2026-12-07T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
                    asset=f"http://ik.imagekit.io/demo/v{n // 3}.mp4",
                    request_id=f"req-{n // 3}",
                )
                for n in range(EVENTS)
            ]
        )
    return path


@pytest.fixture
def damaged(sound_log, tmp_path):
    path = tmp_path / "copy.db"
    shutil.copyfile(sound_log, path)
    damage(path)
    return path


@pytest.mark.parametrize(
    "command", [("failures",), ("assets",), ("timeline", ASSET), ("failures", "--json")]
)
def test_commands_on_a_damaged_log_end_in_one_error_line(damaged, command):
    result = run_cli(*command, db=damaged)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and result.stdout == b"", (result.stdout, lines)
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert str(damaged) in lines[0] and "damaged" in lines[0]
    assert "ikledger verify" in lines[0]


def test_commands_on_damaged_read_models_name_the_file_and_rebuild(sound_log, tmp_path):
    log = tmp_path / "log.db"
    shutil.copyfile(sound_log, log)
    views = tmp_path / "log.projections.db"
    assert run_cli("assets", db=log).returncode == 0
    views.write_bytes(b"garbage " * 4096)
    result = run_cli("failures", db=log)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and result.stdout == b"", lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(views) in lines[0]
    assert "ikledger rebuild" in lines[0]


@pytest.fixture
def damaged_server(damaged, tmp_path):
    """A request process's app over the damaged copy whose catch-up (another process's
    store, as under `serve`) has met the damage and recorded it."""
    views_path = tmp_path / "copy.projections.db"
    with (
        SQLiteStore(damaged) as catching_up,
        open_projections(catching_up, views_path) as views,
        pytest.raises(StoreCorrupt),
    ):
        ProjectionRunner(views).catch_up()
    store = SQLiteStore(damaged, timeout=2.0)
    views = open_projections(store, views_path)
    client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
    yield client, store
    views.close()
    store.close()


def test_healthz_says_store_corrupt_once_the_catch_up_met_the_damage(damaged_server):
    client, _store = damaged_server
    response = client.simulate_get("/healthz")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json["code"] == "store_corrupt" and "damaged" in response.json["error"]


def test_no_webhook_is_appended_to_a_log_known_damaged(damaged_server):
    client, store = damaged_server
    assert client.simulate_get("/healthz").json["code"] == "store_corrupt"
    body = event_body("after-damage")
    response = client.simulate_post("/webhook", body=body, headers=signed(body))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json["code"] == "store_corrupt"
    assert store.get("after-damage") is None


def test_webhook_after_a_damaged_read_is_503_store_corrupt(damaged):
    store = SQLiteStore(damaged, timeout=2.0)
    try:
        with pytest.raises(StoreCorrupt):
            [e for batch in store.read_batches(0) for e in batch]
        client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store))
        body = event_body("after-read")
        response = client.simulate_post("/webhook", body=body, headers=signed(body))
        assert response.status_code == 503 and response.json["code"] == "store_corrupt"
        assert response.headers["retry-after"] == "1"
        health = client.simulate_get("/healthz")
        assert health.status_code == 503 and health.json["code"] == "store_corrupt"
    finally:
        store.close()


def test_assets_page_says_what_is_wrong_not_no_assets_yet(damaged_server):
    client, _store = damaged_server
    page = client.simulate_get("/ui")
    assert page.status_code == 503 and "No assets yet" not in page.text
    assert "StoreCorrupt" in page.text and "damaged" in page.text


def test_healthz_and_pages_on_damaged_read_models_say_read_model_unavailable(sound_log, tmp_path):
    log, views_path = tmp_path / "log.db", tmp_path / "log.projections.db"
    shutil.copyfile(sound_log, log)
    with SQLiteStore(log) as store:
        views = open_projections(store, views_path)
        ProjectionRunner(views).catch_up()
        client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
        for path in tmp_path.glob("log.projections.db*"):  # the file and its WAL
            path.write_bytes(b"\xde\xad\xbe\xef" * (path.stat().st_size // 4 + 1))
        health = client.simulate_get("/healthz")
        assert health.status_code == 503 and health.json["code"] == "read_model_unavailable"
        page = client.simulate_get("/ui")
        assert page.status_code == 503 and str(views_path) in page.text
        assert "No assets yet" not in page.text
        views.close()


def test_serve_refuses_to_start_on_a_log_damaged_by_a_crash(damaged):
    (damaged.parent / (damaged.name + "-open")).touch()  # what a killed server leaves
    env = {"IMAGEKIT_WEBHOOK_SECRET": SECRET}
    for workers in ("1", "2"):
        args = ("serve", "--port", str(free_port()), "--workers", workers)
        result = run_cli(*args, db=damaged, env=env)
        errors = [line for line in result.stderr.decode().splitlines() if "Error" in line]
        assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
        assert len(errors) == 1 and errors[0].startswith("Error: ") and str(damaged) in errors[0]
        assert "ikledger verify" in errors[0]


def test_projections_table_shows_a_checkpoint_ahead_of_the_log_as_an_error():
    row = {
        "name": "timeline",
        "version": 4,
        "checkpoint": 358,
        "log_position": 237,
        "state": "ahead_of_log",
        "lag": -121,
        "error": None,
    }
    text = tables.projections([row])
    line = text.splitlines()[1]
    assert "-121 (ahead of the log)" in line and "ikledger rebuild" in line
    assert line.startswith("\x1b[31m")  # red


def test_serve_refuses_to_start_on_read_models_damaged_by_a_crash(sound_log, tmp_path):
    log, views = tmp_path / "log.db", tmp_path / "log.projections.db"
    shutil.copyfile(sound_log, log)
    assert run_cli("assets", db=log).returncode == 0
    damage(views)
    (tmp_path / "log.db-open").touch()  # what a killed server leaves
    args = ("serve", "--port", str(free_port()), "--workers", "1")
    result = run_cli(*args, db=log, env={"IMAGEKIT_WEBHOOK_SECRET": SECRET})
    errors = [line for line in result.stderr.decode().splitlines() if "Error" in line]
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and errors[0].startswith("Error: ") and str(views) in errors[0]
    assert "ikledger rebuild" in errors[0]
