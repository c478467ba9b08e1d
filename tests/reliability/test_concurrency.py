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


BOUND = 120.0  # seconds the readers may take to each finish a run under load


def _loop(
    stop: threading.Event,
    feeding: threading.Event,
    overlapped: list,
    failures: list,
    commands: list[tuple],
    db,
) -> None:
    """Run `commands` in turn until stopped; counts the runs begun while the load ran."""
    turn = 0
    while not stop.is_set():
        args = commands[turn % len(commands)]
        turn += 1
        during_load = feeding.is_set()
        done = run_cli(*args, db=db)
        if done.returncode != 0:
            failures.append(f"{args}: {done.returncode} {done.stderr.decode()[-300:]}")
        elif during_load:
            overlapped.append(args)


def _top_up(feeder: Feeder, round_: int) -> None:
    """Give the feeder new events when it has none left, so the load never pauses."""
    with feeder.lock:
        if feeder.pending:
            return
        fresh = make_events(200, seed=100 + round_, prefix=f"more{round_}")
        feeder.bodies.update(fresh)
        feeder.pending.extend(reversed([event_id for event_id, _ in fresh]))


def test_two_servers_a_rebuild_and_readers_on_one_log(tmp_path):
    db = tmp_path / "log.db"
    first, second = Server(db), Server(db)
    first.start()
    second.start()
    events = make_events(2000, seed=3, prefix="cc")
    feeder = Feeder(events, lambda: [first.base, second.base], threads=16)
    stop, feeding, failures = threading.Event(), threading.Event(), []
    loops = [
        [("rebuild",)],
        [("events", "--json"), ("status", "--json"), ("verify",)],
        [("projections", "--json")],
    ]
    overlapped: list[list] = [[] for _ in loops]
    others = [
        threading.Thread(target=_loop, args=(stop, feeding, done, failures, commands, db))
        for commands, done in zip(loops, overlapped, strict=True)
    ]
    try:
        for thread in others:
            thread.start()
        # The load runs (topped up with fresh events) until every reader has finished
        # a run it began under load: the overlap is observed, not assumed.
        feeding.set()
        feeder.start()
        deadline = time.monotonic() + BOUND
        round_ = 0
        while not all(overlapped) and not failures:
            assert time.monotonic() < deadline, f"runs under load: {overlapped}"
            _top_up(feeder, round_)
            round_ += 1
            time.sleep(0.05)
        feeding.clear()
        feeder.stop()
        feeder.drain(timeout=BOUND)
        stop.set()
        for thread in others:
            thread.join(timeout=60)
        assert not failures, failures[:3]
        assert not feeder.tally.bad, feeder.tally.bad[:5]
        assert set(feeder.tally.statuses) <= {200, 503}, feeder.tally.statuses

        acked = feeder.tally.acked
        assert len(set(acked.values())) == len(acked), "two events answered one position"
        assert assert_log_holds(db, feeder.bodies, acked) == len(feeder.bodies)
        for server in (first, second):
            server.wait_projections_current()
        served = table_rows(projections_path(db))[1]
        assert served == rebuilt_tables(db, tmp_path / "scratch.db")
    finally:
        stop.set()
        first.stop()
        second.stop()
