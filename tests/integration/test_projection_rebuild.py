"""Rebuild: atomic swap, crash recovery, automatic rebuilds, replay as of a point.

Every test that rebuilds runs on both of a rebuild's paths: through the store's
`sqlite_source` and through staging tables filled from `read_batches`.
"""

import dataclasses

import pytest

from projections import (
    TIMELINE,
    ProjectionDB,
    ProjectionRunner,
    projection_status,
    timeline,
)
from store import SQLiteStore
from tests.projections_helpers import (
    REBUILD_PATHS,
    SAMPLE,
    documented_events,
    log,
    runner,
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
    return projection_status(db)[0]["generation"]


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


def test_new_code_version_rebuilds_on_start(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    before = timeline(pdb, SAMPLE)
    newer = dataclasses.replace(TIMELINE, version=TIMELINE.version + 1)
    ProjectionRunner(pdb, [newer]).catch_up()
    status = projection_status(pdb)[0]
    assert (status["version"], status["generation"], status["checkpoint"]) == (newer.version, 2, 3)
    assert timeline(pdb, SAMPLE) == before


def test_replaced_log_rebuilds_on_start(tmp_path, path):
    first, second = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    views = str(tmp_path / "read.projections.db")
    try:
        first.append_many(documented_events())
        second.append_many(_many(3))
        with ProjectionDB(through(first, path), views) as db:
            ProjectionRunner(db).catch_up()
        with ProjectionDB(through(second, path), views) as db:
            ProjectionRunner(db).catch_up()
            assert [t["request_id"] for t in timeline(db, SAMPLE)["transformations"]] == [
                "q0",
                "q1",
                "q2",
            ]
            assert projection_status(db)[0]["generation"] == 2
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
