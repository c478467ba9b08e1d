"""Faults of `ikledger serve` on a PostgreSQL log (issue 9, faults 8 and 10), over real HTTP."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from store.postgres import PostgresStore
from tests.postgres.helpers import eventually
from tests.support import event_body, run_cli, serve, signed

ASSETS = [f"https://ik.imagekit.io/demo/clip-{n}.mp4" for n in range(4)]


def _body(worker: int, number: int) -> bytes:
    asset = ASSETS[number % len(ASSETS)]
    return event_body(
        f"w{worker}-{number}",
        data={"asset": {"url": asset}},
        request={"x_request_id": f"req-{worker}-{number // 8}", "url": asset + "?tr=f-webm"},
    )


class Load:
    """Signed POSTs from a few threads to the given receivers until stopped.

    Records what each answer was: 200s by id with the body, 503s with their
    Retry-After, anything else (which must never happen).
    """

    def __init__(self, bases: list[str], *, workers: int = 3):
        self.bases = bases
        self.acknowledged: dict[str, bytes] = {}
        self.unavailable = 0
        self.other: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(workers)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            for number in range(20_000):
                if self._stop.is_set():
                    return
                base = self.bases[number % len(self.bases)]
                body = _body(worker, number)
                try:
                    answer = client.post(f"{base}/webhook", content=body, headers=signed(body))
                except httpx.TransportError:
                    time.sleep(0.05)  # a receiver killed by the test
                    continue
                if answer.status_code == 200:
                    self.acknowledged[answer.json()["id"]] = body
                elif answer.status_code == 503 and answer.headers.get("retry-after"):
                    self.unavailable += 1
                    time.sleep(0.05)
                else:
                    self.other.append(f"{answer.status_code} {answer.text[:200]}")


def _caught_up_timelines(base: str, url: str) -> dict:
    """The receiver's timelines of every asset, once its read models reach the log's head."""
    with PostgresStore(url, timeout=10) as store:
        head = store.last_position()
    eventually(
        lambda: all(
            p["checkpoint"] == head for p in httpx.get(f"{base}/healthz").json()["projections"]
        ),
        what="the read models to catch up",
    )
    return {
        asset: httpx.get(f"{base}/timeline", params={"asset": asset}).json() for asset in ASSETS
    }


def _check_log(url: str, load: Load) -> None:
    """Every acknowledged event is in the log once, byte for byte; positions 1..N."""
    with PostgresStore(url, timeout=10) as store:
        stored = {e.id: (e.position, e.body) for b in store.read_batches(0) for e in b}
        assert store.verify().ok
    assert sorted(p for p, _ in stored.values()) == list(range(1, len(stored) + 1))
    missing = [
        key for key, body in load.acknowledged.items() if stored.get(key, (0, b""))[1] != body
    ]
    assert missing == []


@pytest.mark.slow
def test_receiver_answers_503_while_postgres_is_down_and_recovers_by_itself(
    postgres_cluster, postgres_url, tmp_path
):
    postgres_cluster.require_control()
    env = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "views.db"), "IKLEDGER_DB_TIMEOUT": "1"}
    with serve(tmp_path / "a.db", env=env, args=("--db", postgres_url)) as served:
        with Load([served.base]) as load:
            eventually(lambda: len(load.acknowledged) >= 30, what="load before the crash")
            postgres_cluster.stop("immediate")
            eventually(lambda: load.unavailable > 0, what="a 503 while the server is down")
            postgres_cluster.start()
            seen = len(load.acknowledged)
            eventually(lambda: len(load.acknowledged) >= seen + 30, what="200s after restart")
        assert served.alive()
        assert load.other == []
        assert "not stored, answering 503: postgresql://ikledger@" in served.log_text()
    _check_log(postgres_url, load)


def test_serve_never_prints_the_database_password(postgres_url, tmp_path):
    env = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "views.db")}
    with serve(tmp_path / "a.db", env=env, args=("--db", postgres_url)) as served:
        body = _body(0, 0)
        httpx.post(f"{served.base}/webhook", content=body, headers=signed(body))
        logged = served.log_text()
    status = run_cli("status", "--db", postgres_url, env=env)
    password = postgres_url.split(":")[2].split("@")[0]
    assert "postgresql://ikledger@" in logged
    assert password not in logged and password not in status.stdout.decode()


@pytest.mark.slow
def test_two_receivers_one_killed_lose_nothing_and_both_equal_a_rebuild(postgres_url, tmp_path):
    env_a = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "a.views.db")}
    env_b = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "b.views.db")}
    with (
        serve(tmp_path / "a.db", env=env_a, args=("--db", postgres_url)) as first,
        serve(tmp_path / "b.db", env=env_b, args=("--db", postgres_url)) as second,
    ):
        with Load([first.base, second.base]) as load:
            eventually(lambda: len(load.acknowledged) >= 60, what="load on both")
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=10)
            seen = len(load.acknowledged)
            eventually(lambda: len(load.acknowledged) >= seen + 60, what="the survivor's 200s")
        assert load.other == []
        _check_log(postgres_url, load)
        survivor = _caught_up_timelines(second.base, postgres_url)
    # The killed receiver restarts on its own read models: catch-up resumes from its
    # checkpoint and applies nothing twice.
    with serve(tmp_path / "a.db", env=env_a, args=("--db", postgres_url)) as restarted:
        assert _caught_up_timelines(restarted.base, postgres_url) == survivor
    rebuild_env = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "rebuilt.views.db")}
    for asset in ASSETS:
        done = run_cli("timeline", asset, "--json", "--db", postgres_url, env=rebuild_env)
        assert done.returncode == 0, done.stderr.decode()
        assert httpx.Response(200, content=done.stdout).json() == survivor[asset]
