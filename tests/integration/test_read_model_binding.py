"""Read models belong to one log (issue 17, item 1).

A read-model file records the identity of the log it was built from; opening it for
another log is an error naming the file, unless the caller asks to adopt it (emptied
and bound to the new log). Nothing of another log is ever applied to it or served
from it, and its lag is only ever reported against its own log.
"""

from __future__ import annotations

import pytest

from projections import (
    ProjectionRunner,
    ReadModelOfAnotherLog,
    assets,
    open_projections,
    projection_status,
    timeline,
)
from store import SQLiteStore
from store.sqlite_engine import sqlite3
from tests.projections_helpers import SAMPLE, documented_events, video_event

OTHER = "http://ik.imagekit.io/demo/other-video.mp4"


@pytest.fixture
def logs(tmp_path):
    first, second = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    first.append_many(documented_events())
    second.append_many(
        [
            video_event(f"b{n}", "accepted", f"2024-01-0{n + 1}T00:00:00.000Z", asset=OTHER)
            for n in range(5)
        ]
    )
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def views(tmp_path):
    return str(tmp_path / "shared.projections.db")


def built(store, path: str, **options):
    db = open_projections(store, path, **options)
    ProjectionRunner(db).catch_up()
    return db


def urls(db) -> list[str]:
    return [a["asset"] for a in assets(db)["assets"]]


def test_read_models_of_another_log_are_refused_naming_the_file(logs, views):
    first, second = logs
    built(first, views).close()
    with pytest.raises(ReadModelOfAnotherLog) as refused:
        open_projections(second, views)
    message = str(refused.value)
    assert views in message and "ikledger rebuild" in message
    with open_projections(first, views) as db:  # still its own log's, untouched
        assert urls(db) == [SAMPLE]


def test_adopting_empties_the_file_and_binds_it_to_the_new_log(logs, views):
    first, second = logs
    built(first, views).close()
    with built(second, views, adopt=True) as db:
        assert urls(db) == [OTHER]
        assert projection_status(db)[0]["checkpoint"] == 5
    with pytest.raises(ReadModelOfAnotherLog):
        open_projections(first, views)


def test_a_file_adopted_by_another_log_is_neither_served_nor_fed_to_its_old_log(logs, views):
    first, second = logs
    old = built(first, views)
    try:
        built(second, views, adopt=True).close()
        first.append(video_event("a-late", "accepted", "2024-02-01T00:00:00.000Z"))
        with pytest.raises(ReadModelOfAnotherLog):
            ProjectionRunner(old).catch_up()
        for query in (
            lambda: urls(old),
            lambda: timeline(old, SAMPLE),
            lambda: projection_status(old),
        ):
            with pytest.raises(ReadModelOfAnotherLog):
                query()
    finally:
        old.close()
    with open_projections(second, views) as db:
        assert urls(db) == [OTHER] and projection_status(db)[0]["checkpoint"] == 5


def _forget_binding(path: str) -> None:
    """Make the file look like one written before read models recorded their log."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TABLE log_binding")
        conn.execute(
            "DELETE FROM _sqlite_migrations WHERE migration_set = 'ikledger.projections' "
            "AND name = 'm002_log_binding'"
        )
    conn.close()


def test_older_file_is_adopted_by_the_log_it_was_built_from(logs, views):
    first, _ = logs
    built(first, views).close()
    _forget_binding(views)
    with open_projections(first, views) as db:
        status = projection_status(db)[0]
        assert (status["generation"], status["checkpoint"]) == (1, 3)  # kept, not rebuilt
        assert urls(db) == [SAMPLE]


def test_older_file_is_refused_by_a_log_it_does_not_match(logs, views):
    first, second = logs
    built(first, views).close()
    _forget_binding(views)
    with pytest.raises(ReadModelOfAnotherLog, match="position 3"):
        open_projections(second, views)
    with open_projections(first, views) as db:  # the refusal bound it to nobody
        assert urls(db) == [SAMPLE]


def test_checkpoint_ahead_of_the_log_is_an_error_state_not_lag_zero(logs, views):
    first, _ = logs
    with built(first, views) as db:
        status = projection_status(db)[0]
        assert (status["state"], status["lag"]) == ("current", 0)
        first.append(video_event("late", "accepted", "2024-02-01T00:00:00.000Z"))
        status = projection_status(db)[0]
        assert (status["state"], status["lag"]) == ("behind", 1)
        with db.write() as conn:  # as a copy of the log that is shorter would leave it
            conn.execute("UPDATE projection_meta SET checkpoint = checkpoint + 10")
        status = projection_status(db)[0]
        assert (status["state"], status["lag"]) == ("ahead_of_log", -9)
