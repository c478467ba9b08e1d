"""The log page's verify and rebuild: in the background, one at a time across workers."""

from __future__ import annotations

import json
import os
import re
import threading

import falcon.testing
import pytest

import projections
from receiver.config import Config
from receiver.http.app import create_app
from store import NewEvent, open_store
from tests.support import event_body, wait_for

ZERO_HEAD = "0" * 64


def test_a_job_runs_in_the_background_once_across_workers(tmp_path):
    from receiver.ui.jobs import Job

    one, other = Job("verify", str(tmp_path)), Job("verify", str(tmp_path))  # two workers
    go, ran = threading.Event(), []

    def work(report):
        report("halfway")
        assert go.wait(20)
        ran.append(1)
        return {"ok": True}

    assert one.start(work)  # returns at once: the work waits on `go`
    wait_for(lambda: other.view().progress == "halfway", "progress shown by another worker")
    assert other.view().running
    assert not other.start(work) and not one.start(work)  # single flight
    go.set()
    wait_for(lambda: not other.view().running, "the job to finish")
    assert other.view().result == {"ok": True} and other.view().error is None
    assert ran == [1]
    assert other.start(lambda report: {"ok": False})  # free again
    wait_for(lambda: other.view().result == {"ok": False}, "the second run")


def test_a_job_starts_again_as_soon_as_the_last_one_shows_finished(tmp_path, monkeypatch):
    # The holder writes its result, then lets go of the lock: a start in between (the
    # page shows it finished) must wait that moment out, not answer "already running".
    from receiver.ui import jobs

    release = jobs.Flight.release

    def slow_release(self, handle):
        threading.Event().wait(0.3)
        release(self, handle)

    monkeypatch.setattr(jobs.Flight, "release", slow_release)
    one, other = jobs.Job("verify", str(tmp_path)), jobs.Job("verify", str(tmp_path))
    assert one.start(lambda report: {"ok": True})
    wait_for(lambda: not other.view().running, "the job to show finished")
    assert other.view().error is None  # finished, not died
    assert other.start(lambda report: {"ok": False})
    wait_for(lambda: other.view().result == {"ok": False}, "the second run")


@pytest.fixture
def app(tmp_path):
    """An app whose UI state lives in a folder, as a worker of `serve` has it."""
    state = tmp_path / "ui-state"
    state.mkdir()
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    try:
        yield create_app(Config(secrets=("s",), ui_state=str(state)), store, views), store, state
    finally:
        views.close()
        store.close()


def _post(client, path: str):
    page = client.simulate_get("/ui/log")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    cookie = page.cookies["ikledger_session"].value
    return client.simulate_post(
        path,
        body=f"csrf={csrf}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"ikledger_session={cookie}",
        },
    )


def test_a_job_left_running_by_a_dead_worker_is_not_trusted_by_its_pid(app):
    app, _, state = app
    # A worker that died mid-rebuild left "running", with a pid that is alive again
    # (here: this very process): no lock is held, so the page says it stopped.
    stale = {"running": True, "started_at": 1.0, "pid": os.getpid()}
    (state / "rebuild.json").write_text(json.dumps(stale))
    client = falcon.testing.TestClient(app)
    page = client.simulate_get("/ui/log").text
    assert "stopped before it finished" in page and "Rebuild running" not in page
    assert _post(client, "/ui/log/rebuild").status_code == 303
    wait_for(lambda: "Rebuilt" in client.simulate_get("/ui/log").text, "the rebuild")


@pytest.mark.parametrize("bad", [1, 3])
def test_a_failed_verify_shows_no_all_zero_head(app, bad):
    app, store, state = app
    for n in range(1, 5):
        body = event_body(f"e{n}")
        kind = "file.created" if n == bad else "video.transformation.accepted"
        store.append(NewEvent(f"e{n}", kind, "2024-01-02T03:04:05.678Z", body, "s"))
    client = falcon.testing.TestClient(app)
    assert _post(client, "/ui/log/verify").status_code == 303
    page = wait_for(
        lambda: 'id="verify-result"' in (text := client.simulate_get("/ui/log").text) and text,
        "the verify result",
    )
    assert f"broken at position {bad}" in page
    # Neither the page nor the record every worker reads holds GENESIS' zeros as a head.
    assert ZERO_HEAD not in page and ZERO_HEAD not in (state / "verify.json").read_text()
    if bad > 1:  # the head of the events that checked out
        assert store.get(f"e{bad - 1}").chain.hex() in page
