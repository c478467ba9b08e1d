"""What the search index holds, the same by catch-up and by rebuild (issue 21's body search)."""

import orjson
import pytest

from projections import ProjectionRunner, search_events
from projections.db import read_meta
from projections.runner import OVERVIEW_PROJECTIONS
from projections.search_index import SEARCH
from store import NewEvent
from tests.projections_helpers import log, pdb  # noqa: F401

URL = "https://ik.imagekit.io/demo/videos/clip-00633.mp4?tr=f-webm,q-10"


def _event(event_id: str, body: bytes, event_type: str = "file.created") -> NewEvent:
    return NewEvent(event_id, event_type, "2024-01-01T00:00:00.000Z", body, "standard-webhooks")


def _deep(depth: int, text: str) -> bytes:
    """A JSON body whose one string sits `depth` arrays deep."""
    return orjson.dumps(
        {"data": {"tags": orjson.Fragment(b"[" * depth + orjson.dumps(text) + b"]" * depth)}}
    )


EVENTS = [
    _event(
        "v1",
        orjson.dumps(
            {
                "type": "video.transformation.ready",
                "request": {"url": URL, "x_request_id": "8c4cdbd6-cc29-4c3b-ab95-2b4b109c4ddd"},
                "data": {"asset": {"url": URL.split("?")[0]}, "output": {"url": URL}},
            }
        ),
        "video.transformation.ready",
    ),
    _event("f1", orjson.dumps({"data": {"name": "image_010566.jpg", "size": 512, "ok": True}})),
    _event("f2", b'{"data": {"name": "Cr\\u00e8me br\\u00fbl\\u00e9e", "n": null}}'),
    _event("d1", _deep(800, "deep red fox")),
    _event("x1", b"not json"),
]


@pytest.fixture(params=["catch-up", "rebuild"])
def indexed(request, log, pdb):  # noqa: F811
    log.append_many(EVENTS)
    runner = ProjectionRunner(pdb, OVERVIEW_PROJECTIONS)
    if request.param == "catch-up":
        runner.catch_up()
    else:
        runner.rebuild("search")
    return pdb


def _ids(db, q):
    return [e["id"] for e in search_events(db, q)]


@pytest.mark.parametrize(
    "q, found",
    [
        ("clip-00633.mp4", ["v1"]),  # an asset's file name, cut into words
        ("00633", ["v1"]),
        ("f-webm", ["v1"]),  # a fragment of a URL's query
        ("imagekit.io/demo", ["v1"]),
        ("b4540087002e ab95", []),  # words of an id, not all of this one
        ("2b4b109c4ddd", ["v1"]),  # the longest word of a request id
        ("image_010566.jpg", ["f1"]),
        ("010566", ["f1"]),
        ("crème brûlée", ["f2"]),  # decoded escapes, diacritics kept
        ("creme", []),
        ("512", []),  # numbers, booleans and keys are not words of the body
        ("true", []),
        ("name", []),
        ("deep fox", ["d1"]),
        ('"red fox"', ["d1"]),
        ('"fox red"', []),
        ("not json", []),
    ],
)
def test_search_finds_the_words_of_string_values(indexed, q, found):
    assert _ids(indexed, q) == found


def test_search_lists_every_event_even_without_words(indexed):
    assert _ids(indexed, None) == ["x1", "d1", "f2", "f1", "v1"]


def test_search_index_keeps_no_per_event_sizes(indexed):
    """Results are ordered by position, never ranked: FTS5's `%_docsize` would be dead weight."""
    with indexed.read() as conn:
        text = SEARCH.tables(read_meta(conn, "search").generation).text
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert f"{text}_data" in tables
    assert f"{text}_docsize" not in tables
