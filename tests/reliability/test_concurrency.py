"""Promise 2: two servers on one log, a rebuild and CLI readers at once lose nothing."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support import run_cli

from .harness import (
    Feeder,
    Server,
    assert_log_holds,
    make_events,
    projections_path,
    rebuilt_tables,
    table_rows,
)

pytestmark = pytest.mark.slow


def _loop(stop: threading.Event, failures: list, commands: list[tuple], db) -> None:
    turn = 0
    while not stop.is_set():
        args = commands[turn % len(commands)]
        turn += 1
        done = run_cli(*args, db=db)
        if done.returncode != 0:
            failures.append(f"{args}: {done.returncode} {done.stderr.decode()[-300:]}")


def test_two_servers_a_rebuild_and_readers_on_one_log(tmp_path):
    db = tmp_path / "log.db"
    first, second = Server(db), Server(db)
    first.start()
    second.start()
    events = make_events(2000, seed=3, prefix="cc")
    feeder = Feeder(events, lambda: [first.base, second.base], threads=16)
    stop, failures = threading.Event(), []
    others = [
        threading.Thread(target=_loop, args=(stop, failures, [("rebuild",)], db)),
        threading.Thread(
            target=_loop,
            args=(stop, failures, [("events", "--json"), ("status", "--json"), ("verify",)], db),
        ),
        threading.Thread(target=_loop, args=(stop, failures, [("projections", "--json")], db)),
    ]
    try:
        for thread in others:
            thread.start()
        started = time.monotonic()
        feeder.drain(timeout=120)
        elapsed = time.monotonic() - started
        stop.set()
        for thread in others:
            thread.join(timeout=60)
        assert not failures, failures[:3]
        assert not feeder.tally.bad, feeder.tally.bad[:5]
        assert set(feeder.tally.statuses) <= {200, 503}, feeder.tally.statuses
        assert elapsed > 1.0  # the readers and rebuilds really overlapped the load

        acked = feeder.tally.acked
        assert len(set(acked.values())) == len(acked), "two events answered one position"
        assert assert_log_holds(db, feeder.bodies, acked) == len(events)
        for server in (first, second):
            server.wait_projections_current()
        served = table_rows(projections_path(db))[1]
        assert served == rebuilt_tables(db, tmp_path / "scratch.db")
    finally:
        stop.set()
        first.stop()
        second.stop()
