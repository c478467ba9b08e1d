"""Rebuild: atomic swap, crash recovery, automatic rebuilds, replay as of a point.

Every test that rebuilds runs on both of a rebuild's paths: through the store's
`sqlite_source` and through staging tables filled from `read_batches`.
"""

import dataclasses
import select
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from projections import (
    TIMELINE,
    ProjectionDB,
    ProjectionDefect,
    ProjectionRunner,
    ReadModelOfAnotherLog,
    RebuildBusy,
    projection_status,
    timeline,
)
from store import SQLiteStore
from tests.projections_helpers import (
    REBUILD_PATHS,
    SAMPLE,
    documented_events,
    log,
    poison_event,
    runner,
    status_of,
    table_rows,
    through,
    video_event,
)

__all__ = ["log", "runner"]  # fixtures


@pytest.fixture(params=REBUILD_PATHS)
def path(request):
    return request.param


@pytest.fixture
def pdb(log, tmp_path, path):
    db = ProjectionDB(through(log, path), tmp_path / "log.projections.db")
    yield db
    db.close()


def _generation(db):
    return status_of(db)["generation"]


def _many(n, start=0):
    return [
        video_event(
            f"a{i}",
            "accepted",
            f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
            request_id=f"q{i}",
        )
        for i in range(start, start + n)
    ]


def test_reader_during_rebuild_sees_the_old_model_complete(log, pdb, runner, tmp_path):
    log.append_many(documented_events() + _many(50))
    runner.catch_up()
    before = timeline(pdb, SAMPLE)
    reader = ProjectionDB(log, pdb.path)  # another connection, as another process would have
    seen = []

    def progress(p):
        seen.append((p.phase, _generation(reader), timeline(reader, SAMPLE) == before))

    try:
        runner.rebuild("timeline", progress=progress)
        after = timeline(reader, SAMPLE)
    finally:
        reader.close()
    assert {phase for phase, _, _ in seen} >= {"loading", "finishing", "done"}
    assert all(gen == 1 and same for phase, gen, same in seen if phase != "done")
    assert after == before
    assert _generation(pdb) == 2


def test_rebuild_gives_the_same_tables_as_catch_up(log, pdb, runner, tmp_path):
    log.append_many(documented_events() + _many(30))
    runner.catch_up()
    incremental = table_rows(pdb.path)
    runner.rebuild()
    assert table_rows(pdb.path) == incremental


def test_failed_rebuild_keeps_the_old_model_and_the_next_one_succeeds(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    before = timeline(pdb, SAMPLE)

    def crash(p):
        if p.phase == "finishing":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.rebuild(progress=crash)
    assert timeline(pdb, SAMPLE) == before
    # A hard crash would leave a half-built generation behind: simulate one.
    with pdb.write() as conn:
        TIMELINE.bulk_setup(conn, TIMELINE.tables(7))
    runner.rebuild()
    assert timeline(pdb, SAMPLE) == before
    with pdb.read() as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not any(n.endswith(("_g1", "_g7")) for n in names)


def test_a_rebuild_failing_inside_its_finish_leaves_no_table_and_the_old_model(log, pdb, runner):
    # The failure comes inside the finish's write transaction, on the rebuild's own
    # connection: its tables must still be dropped, so that transaction must be gone.
    from projections.rebuild import rebuild

    log.append_many(documented_events())
    runner.catch_up()
    before = timeline(pdb, SAMPLE)

    def failing_finish(conn, tables):
        TIMELINE.finish(conn, tables)
        raise RuntimeError("finish failed")

    with pytest.raises(ProjectionDefect, match="finish failed"):
        rebuild(pdb, dataclasses.replace(TIMELINE, finish=failing_finish))
    assert timeline(pdb, SAMPLE) == before
    with pdb.read() as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not any(n.endswith("_g2") for n in names)
    runner.rebuild()
    assert timeline(pdb, SAMPLE) == before


def test_a_rebuild_whose_counting_thread_fails_keeps_the_old_model_and_no_scratch_file(
    log, pdb, runner, tmp_path, monkeypatch
):
    # The counts are made on other connections, in threads, after `finish` committed the
    # merged transformations (stats_aside): an error there fails the rebuild like one on
    # its own connection, the unserved generation goes, and so do the scratch files.
    from projections import stats_aside

    log.append_many(documented_events() + _many(30))
    runner.catch_up()
    before, rows = timeline(pdb, SAMPLE), table_rows(pdb.path)
    broken = (stats_aside.HALVES[0][0], stats_aside.HALVES[0][1], ("SELECT * FROM no_such_table",))
    monkeypatch.setattr(stats_aside, "HALVES", (broken, *stats_aside.HALVES[1:]))
    with pytest.raises(ProjectionDefect, match="no_such_table"):
        runner.rebuild("timeline")
    assert timeline(pdb, SAMPLE) == before
    with pdb.read() as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not any(n.endswith("_g2") for n in names)
    assert not list(tmp_path.glob(".rebuild-*"))
    monkeypatch.undo()
    runner.rebuild("timeline")
    assert table_rows(pdb.path) == rows
    assert not list(tmp_path.glob(".rebuild-*"))


def test_a_rebuild_counts_inline_where_no_second_connection_can_open(
    log, pdb, runner, tmp_path, monkeypatch
):
    # A projections file no second connection can open (stats_aside finds no path):
    # the same statements on the rebuild's own connection, the same tables as catch-up.
    from projections import stats_aside

    log.append_many(documented_events() + _many(30))
    runner.catch_up()
    incremental = table_rows(pdb.path)
    started = []
    monkeypatch.setattr(stats_aside, "_file_of", lambda conn: started.append(1) and "")
    runner.rebuild("timeline")
    assert started and table_rows(pdb.path) == incremental
    assert not list(tmp_path.glob(".rebuild-*"))


def test_new_code_version_rebuilds_on_start(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    before = timeline(pdb, SAMPLE)
    newer = dataclasses.replace(TIMELINE, version=TIMELINE.version + 1)
    ProjectionRunner(pdb, [newer]).catch_up()
    status = status_of(pdb)
    assert (status["version"], status["generation"], status["checkpoint"]) == (newer.version, 2, 3)
    assert timeline(pdb, SAMPLE) == before


def test_replaced_log_is_refused_then_adopted_and_rebuilt(tmp_path, path):
    first, second = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    views = str(tmp_path / "read.projections.db")
    try:
        first.append_many(documented_events())
        second.append_many(_many(3))
        with ProjectionDB(through(first, path), views) as db:
            ProjectionRunner(db).catch_up()
        with pytest.raises(ReadModelOfAnotherLog):
            ProjectionDB(through(second, path), views)
        with ProjectionDB(through(second, path), views, adopt=True) as db:
            ProjectionRunner(db).catch_up()
            assert [t["request_id"] for t in timeline(db, SAMPLE)["transformations"]] == [
                "q0",
                "q1",
                "q2",
            ]
            assert status_of(db)["checkpoint"] == 3
    finally:
        first.close()
        second.close()


def test_log_of_the_same_identity_with_another_history_rebuilds_on_start(tmp_path, path):
    # A file copied behind the store's back keeps the identity; the chain at the
    # checkpoint still tells the copies apart once their histories differ.
    first = SQLiteStore(tmp_path / "a.db")
    views = str(tmp_path / "read.projections.db")
    try:
        first.append_many(_many(3))
    finally:
        first.close()
    shutil.copyfile(tmp_path / "a.db", tmp_path / "b.db")
    first, second = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    try:
        first.append_many(documented_events())
        second.append_many([video_event("other", "accepted", "2030-01-01T00:00:00.000Z")])
        with ProjectionDB(through(first, path), views) as db:
            ProjectionRunner(db).catch_up()
        with ProjectionDB(through(second, path), views) as db:
            ProjectionRunner(db).catch_up()
            status = status_of(db)
            assert (status["generation"], status["checkpoint"]) == (2, 4)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("as_of", "statuses", "position"),
    [
        (1, ["accepted"], 1),
        ("2", ["ready"], 2),
        (3, ["ready", "error"], 3),
        (99, ["ready", "error"], 3),
        ("2022-06-20T12:00:00Z", ["accepted"], 3),
        ("2022-06-20T12:00:11.703Z", ["ready"], 3),
        ("2022-06-20T12:20:00+00:00", ["ready", "error"], 3),
        ("2000-01-01T00:00:00Z", [], 3),
    ],
)
def test_timeline_as_of_a_position_or_a_time(log, pdb, runner, as_of, statuses, position):
    log.append_many(documented_events())
    runner.catch_up()
    result = timeline(pdb, SAMPLE.replace("http:", "https:"), as_of=as_of)
    assert [t["status"] for t in result["transformations"]] == statuses
    assert result["position"] == position


def test_as_of_the_head_equals_the_served_timeline(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    assert timeline(pdb, SAMPLE, as_of=3) == timeline(pdb, SAMPLE)


def test_projections_use_nothing_of_the_store_but_its_contract(log, pdb, runner, path):
    log.append_many(documented_events() + _many(5))
    runner.catch_up()
    runner.rebuild()
    timeline(pdb, SAMPLE, as_of=2)
    projection_status(pdb)
    runner.start()
    runner.stop()
    assert pdb.store.violations == []  # no path, no backend, nothing SQLite-shaped
    assert ("sqlite_source" in pdb.store.calls) == (path == "sqlite-source")
    assert "type_counts" in pdb.store.calls


def test_rebuild_stops_before_a_poison_event_as_catch_up_does(log, pdb, runner, tmp_path):
    log.append_many(
        [*documented_events(), *_many(4), poison_event("bad", "2024-01-01T00:00:09.000Z")]
    )
    log.append_many(_many(3, start=10))
    runner.catch_up()
    incremental, before = table_rows(pdb.path), status_of(pdb)
    runner.rebuild()
    after = status_of(pdb)
    assert table_rows(pdb.path) == incremental
    assert (after["checkpoint"], after["error"]["position"]) == (7, 8)
    assert after["error"]["message"] == before["error"]["message"]


# -- one rebuild at a time ---------------------------------------------------------

HOLD_LOCK = """
import sys
from projections.lease import rebuild_lock
with rebuild_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def lock_holder(pdb):
    """Another process holding the rebuild lock of `pdb`'s file until it is killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, pdb.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready and child.stdout.readline() == b"held\n"
        yield child
    finally:
        child.kill()
        child.wait(30)


def test_a_second_rebuild_refuses_while_another_process_rebuilds(log, pdb, runner, lock_holder):
    log.append_many(documented_events())
    runner.catch_up()
    before = table_rows(pdb.path)
    with pytest.raises(
        RebuildBusy, match=f"another rebuild .* is running \\(pid {lock_holder.pid}"
    ):
        runner.rebuild()
    assert table_rows(pdb.path) == before
    assert _generation(pdb) == 1
    lock_holder.kill()  # the holder dies without releasing anything: the OS does
    lock_holder.wait(30)
    runner.rebuild()
    assert table_rows(pdb.path) == before
    assert _generation(pdb) == 2


REBUILD_PAUSED = """
import sys
from projections import ProjectionDB, ProjectionRunner
from store import SQLiteStore

def pause(progress):
    if progress.phase == "loading":
        print("loading", flush=True)
        sys.stdin.readline()

store = SQLiteStore(sys.argv[1])
with ProjectionDB(store, sys.argv[2]) as db:
    print(ProjectionRunner(db).rebuild("timeline", progress=pause)["timeline"], flush=True)
store.close()
"""


def test_two_rebuild_processes_one_refused_and_no_table_lost(log, tmp_path):
    log.append_many(documented_events() + _many(20))
    views = str(tmp_path / "shared.projections.db")
    with ProjectionDB(log, views) as db:
        ProjectionRunner(db).catch_up()
        expected = table_rows(views)
        child = subprocess.Popen(
            [sys.executable, "-c", REBUILD_PAUSED, str(tmp_path / "log.db"), views],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            ready, _, _ = select.select([child.stdout], [], [], 60)
            assert ready and child.stdout.readline() == b"loading\n"  # mid-rebuild, lock held
            with pytest.raises(RebuildBusy, match=f"pid {child.pid}"):
                ProjectionRunner(db).rebuild()
            out, _ = child.communicate(b"\n", timeout=60)
        finally:
            child.kill()
            child.wait(30)
        assert (child.returncode, out) == (0, b"23\n")
        assert _generation(db) == 2
        assert table_rows(views) == expected


def test_an_automatic_rebuild_is_retried_once_the_running_one_ends(log, pdb, runner, lock_holder):
    log.append_many(documented_events())
    runner.catch_up()
    newer = dataclasses.replace(TIMELINE, version=TIMELINE.version + 1)
    starting = ProjectionRunner(pdb, [newer])
    assert starting.catch_up() == {"timeline": 0}  # no crash, nothing applied with new code
    status = status_of(pdb)
    assert (status["version"], status["generation"]) == (TIMELINE.version, 1)
    assert "another rebuild" in status["error"]["message"]
    lock_holder.kill()
    lock_holder.wait(30)
    starting.catch_up()
    status = status_of(pdb)
    assert (status["version"], status["generation"], status["error"]) == (newer.version, 2, None)


def test_two_rebuilds_in_threads_one_refused_and_no_table_lost(log, pdb, runner, tmp_path):
    log.append_many(documented_events() + _many(20))
    runner.catch_up()
    expected = table_rows(pdb.path)
    other = ProjectionDB(pdb.store, pdb.path)
    first_loading, second_done = threading.Event(), threading.Event()
    refused = []

    def hold_while_loading(p):
        if p.phase == "loading" and not first_loading.is_set():
            first_loading.set()
            assert second_done.wait(30)

    def second():
        assert first_loading.wait(30)
        try:
            ProjectionRunner(other).rebuild()
        except RebuildBusy as exc:
            refused.append(exc)
        finally:
            second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        runner.rebuild(progress=hold_while_loading)
    finally:
        thread.join(30)
        other.close()
    assert len(refused) == 1
    assert _generation(pdb) == 2
    assert table_rows(pdb.path) == expected
