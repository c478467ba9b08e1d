"""A damaged read-model file, or read models of a damaged log, give no answer at all.

Issue 17: with a damaged log, `failures`, `assets` and `timeline` answered "nothing"
from read models that could not be brought up to date. The damage here is the one a
user met (8 KiB of garbage in the middle of a copy), and, to know which query meets
it, garbage over every page of one table.
"""

from __future__ import annotations

import random
import shutil

import pytest

from projections import (
    ProjectionRunner,
    ReadModelCorrupt,
    assets,
    open_projections,
    projection_status,
    timeline,
    transformations,
)
from store import SQLiteStore, StoreCorrupt
from store.sqlite_engine import sqlite3
from tests.projections_helpers import video_event

ASSETS = 60
PAGE = 16384  # projections/db.py PAGE_SIZE
SEEN = "http://ik.imagekit.io/demo/v7.mp4"


def _events(count: int = 300):
    kinds = ("accepted", "ready", "error")
    return [
        video_event(
            f"e{n}",
            kinds[n % 3],
            f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}.000Z",
            asset=f"http://ik.imagekit.io/demo/v{n % ASSETS}.mp4",
            request_id=f"r{n // 3}",
        )
        for n in range(count)
    ]


QUERIES = {
    "assets": lambda db: assets(db),
    "failures": lambda db: transformations(db, status="error"),
    "stuck": lambda db: transformations(db, status="stuck", now="2030-01-01T00:00:00Z"),
    "timeline": lambda db: timeline(db, SEEN),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A log of 300 events and its read models, closed (so the file holds everything)."""
    folder = tmp_path_factory.mktemp("built")
    with SQLiteStore(folder / "log.db") as store:
        store.append_many(_events())
        db = open_projections(store, folder / "views.db")
        ProjectionRunner(db).catch_up()
        answers = {name: query(db) for name, query in QUERIES.items()}
        db.close()
    assert all(answers.values())
    return folder, answers


@pytest.fixture
def log(built):
    store = SQLiteStore(built[0] / "log.db")
    yield store
    store.close()


def _copy(built, tmp_path):
    path = tmp_path / "views.db"
    shutil.copyfile(built[0] / "views.db", path)
    return path


def _pages_of(path, table: str) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (table,))]
    finally:
        conn.close()


def _garble(path, offset: int, size: int, seed: int = 17) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(random.Random(seed).randbytes(size))


@pytest.mark.parametrize(
    ("table", "query"),
    [
        ("timeline_assets_g1", "assets"),
        ("timeline_transformations_g1", "failures"),
        ("timeline_transformations_g1", "stuck"),
        ("timeline_events_g1", "timeline"),
    ],
)
def test_query_meeting_a_damaged_table_raises_naming_the_file(built, log, tmp_path, table, query):
    path = _copy(built, tmp_path)
    for page in _pages_of(path, table):
        _garble(path, (page - 1) * PAGE, PAGE, seed=page)
    with open_projections(log, path) as db, pytest.raises(ReadModelCorrupt) as raised:
        QUERIES[query](db)
    assert f"read models in {path} are damaged" in str(raised.value)


def test_issue_damage_gives_the_true_answer_or_an_error_never_a_short_one(built, log, tmp_path):
    path = _copy(built, tmp_path)
    _garble(path, path.stat().st_size // 2, 8192)
    raised = []
    with open_projections(log, path) as db:
        assert db.quick_check() is not None
        for name, query in QUERIES.items():
            try:
                answer = query(db)
            except ReadModelCorrupt:
                raised.append(name)
            else:  # its pages are intact: the whole answer
                assert answer == built[1][name], name
    assert raised  # the middle of this file holds pages some query reads


def test_quick_check_passes_sound_read_models(built, log):
    with open_projections(log, built[0] / "views.db") as db:
        assert db.quick_check() is None


def test_catch_up_from_a_damaged_log_raises_instead_of_leaving_empty_read_models(built, tmp_path):
    damaged = tmp_path / "log.db"
    shutil.copyfile(built[0] / "log.db", damaged)
    # A leaf page in the middle of the events table (dbstat names it): what lies in the
    # middle of the file depends on the other tables' layout (the tree's, forwarding's).
    conn = sqlite3.connect(damaged)
    leaves = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno"
    ).fetchall()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    (middle,) = leaves[len(leaves) // 2]
    _garble(damaged, (middle - 1) * page_size, page_size)
    with SQLiteStore(damaged) as store, open_projections(store, tmp_path / "views.db") as db:
        with pytest.raises(StoreCorrupt, match="damaged"):
            ProjectionRunner(db).catch_up()
        assert projection_status(db)[0]["error"] is not None  # recorded as well
