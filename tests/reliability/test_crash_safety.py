"""Promise 1: SIGKILL at any moment loses nothing acknowledged and corrupts nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import httpx
import orjson
import pytest

from store import NewEvent, SQLiteStore
from store.sqlite_engine import sqlite3
from tests.support import IKLEDGER, run_cli

from .harness import (
    Feeder,
    Server,
    assert_log_holds,
    log_rows,
    make_events,
    projections_path,
    rebuilt_tables,
    table_rows,
)

pytestmark = pytest.mark.slow

KILLS = 4  # at random moments under load; each round costs a restart and a rebuild


def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path):
    rng = random.Random(20240501)
    db = tmp_path / "log.db"
    events = make_events(4000, seed=1)
    server = Server(db)
    feeder = Feeder(events, lambda: [server.base], threads=24)
    server.start()
    try:
        for round_ in range(KILLS):
            acked_before = len(feeder.tally.acked)
            feeder.start()
            deadline = time.monotonic() + 30  # under load first, however slow the machine
            while len(feeder.tally.acked) < acked_before + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.8))
            while feeder.tally.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.001)  # kill while the server holds requests, never between
            server.kill()  # requests are in flight: the feeder never pauses first
            feeder.stop()
            assert not feeder.tally.bad, feeder.tally.bad[:5]
            assert len(feeder.tally.acked) > acked_before, f"round {round_}: nothing delivered"

            assert_log_holds(db, feeder.bodies, feeder.tally.acked)
            server.start()
            server.wait_projections_current()
            served = table_rows(projections_path(db))[1]
            assert served == rebuilt_tables(db, tmp_path / "scratch.db"), f"round {round_}"

        # ImageKit keeps retrying what was never acknowledged: all of it lands, once.
        feeder.drain()
        assert not feeder.tally.bad, feeder.tally.bad[:5]
        stored = assert_log_holds(db, feeder.bodies, feeder.tally.acked)
        assert stored == len(events)
        assert sorted(event_id for _, event_id, _ in log_rows(db)) == sorted(feeder.bodies)
        # Kills did cut requests in flight (refused connections after a kill do not count).
        assert feeder.tally.cut >= 1, feeder.tally
        server.wait_projections_current()
        served = table_rows(projections_path(db))[1]
        assert served == rebuilt_tables(db, tmp_path / "scratch.db")
    finally:
        server.stop()


def _seed_log(db, count: int) -> list[str]:
    """A log of `count` events written straight through the store; returns a few assets."""
    events = make_events(count, seed=2, prefix="big", assets=300)
    with SQLiteStore(db) as store:
        for start in range(0, count, 2000):
            store.append_many(
                [
                    NewEvent(event_id, doc["type"], doc["created_at"], body, "standard-webhooks")
                    for event_id, body in events[start : start + 2000]
                    for doc in [orjson.loads(body)]
                ]
            )
    return sorted({orjson.loads(body)["data"]["asset"]["url"] for _, body in events[:50]})[:5]


def _timelines(base: str, assets: list[str]) -> list:
    return [
        httpx.get(f"{base}/timeline", params={"asset": url}, timeout=10).json() for url in assets
    ]


def test_sigkill_during_rebuild_keeps_serving_the_old_read_model(tmp_path):
    rng = random.Random(7)
    db = tmp_path / "log.db"
    assets = _seed_log(db, 12_000)
    views = projections_path(db)
    server = Server(db)
    server.start()
    try:
        server.wait_projections_current(timeout=90)
        generation, rows = table_rows(views)
        answers = _timelines(server.base, assets)
        assert all(a["transformations"] for a in answers)
        # A full rebuild first, to know how long one takes and kill at fractions of that.
        started = time.monotonic()
        assert run_cli("rebuild", db=db).returncode == 0
        duration = time.monotonic() - started
        generation, rebuilt = table_rows(views)
        assert rebuilt == rows
        killed = 0
        for _ in range(8):
            rebuild = subprocess.Popen(
                [IKLEDGER, "rebuild", "--db", str(db)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(duration * rng.uniform(0.2, 0.9))
            if rebuild.poll() is None:
                os.kill(rebuild.pid, signal.SIGKILL)
                killed += 1
            rebuild.wait(timeout=30)
            served, served_rows = table_rows(views)
            # Killed before its swap committed: the old generation. Finished, or killed
            # between the swap's commit and its exit: the new one. Complete either way.
            if rebuild.returncode == 0:
                assert served != generation
            assert served_rows == rows
            generation = served
            assert _timelines(server.base, assets) == answers
            assert server.health().status_code == 200
            if killed == 3:
                break
        assert killed == 3, "the rebuilds ended before they could be killed"

        done = run_cli("rebuild", db=db)
        assert done.returncode == 0, done.stderr.decode()
        new_generation, new_rows = table_rows(views)
        assert new_generation != generation
        assert new_rows == rows
        assert _timelines(server.base, assets) == answers
        leftovers = sqlite3.connect(views).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'timeline_%' "
            "AND name NOT LIKE ?",
            (f"%_g{new_generation}",),
        )
        assert leftovers.fetchall() == [], "tables of killed rebuilds were not dropped"
    finally:
        server.stop()
