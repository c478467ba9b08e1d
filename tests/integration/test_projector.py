"""`ikledger serve` keeps the read models current from a child process (receiver.runtime.catchup).

Real `serve` processes on free loopback ports, real signals. Every wait is bounded:
`wait_for` (tests.support) polls at most BOUND seconds, then fails the test.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.support import BOUND, alive, event_body, serve, signed, wait_for

ASSET = "https://ik.imagekit.io/demo/v.mp4"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def deliver(base: str, event_id: str) -> None:
    body = event_body(event_id)
    answer = httpx.post(f"{base}/webhook", content=body, headers=signed(body), timeout=10)
    assert answer.status_code in (200, 201), answer.text


def projector(base: str) -> dict:
    return httpx.get(f"{base}/healthz", timeout=5).json()["projector"]


def caught_up_to(base: str, event_id: str) -> bool:
    """The served timeline holds `event_id` (so the read models caught up with it)."""
    answer = httpx.get(f"{base}/events", params={"asset": ASSET}, timeout=5)
    return answer.status_code == 200 and event_id in answer.text


def test_serve_catches_up_from_a_child_process_it_restarts_when_killed(tmp_path):
    with serve(tmp_path / "log.db") as served:
        first = projector(served.base)
        assert first["running"] and first["restarts"] == 0
        assert parent_of(first["pid"]) == served.process.pid
        deliver(served.base, "before-kill")
        wait_for(lambda: caught_up_to(served.base, "before-kill"), "catch-up by the child")

        os.kill(first["pid"], signal.SIGKILL)
        restarted = wait_for(
            lambda: (p := projector(served.base))["restarts"] == 1 and p["running"] and p,
            "the restart of the killed child",
        )
        assert restarted["pid"] != first["pid"] and restarted["last_exit"] == -signal.SIGKILL
        deliver(served.base, "after-kill")
        wait_for(lambda: caught_up_to(served.base, "after-kill"), "catch-up by the new child")
        assert served.alive()


def test_the_child_exits_when_serve_is_sigkilled(tmp_path):
    with serve(tmp_path / "log.db") as served:
        child = projector(served.base)["pid"]
        assert alive(child)
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(BOUND)
        wait_for(lambda: not alive(child), "the child's exit after its parent's SIGKILL")


def test_serve_with_catch_up_thread_runs_no_child(tmp_path):
    with serve(tmp_path / "log.db", args=("--catch-up", "thread", "--workers", "1")) as served:
        assert "projector" not in httpx.get(f"{served.base}/healthz", timeout=5).json()
        deliver(served.base, "one")
        wait_for(lambda: caught_up_to(served.base, "one"), "catch-up by the thread")
        children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children")
        forwarder = httpx.get(f"{served.base}/healthz", timeout=5).json()["forwarder"]["pid"]
        assert children.read_text().split() == [str(forwarder)]  # no catch-up child
