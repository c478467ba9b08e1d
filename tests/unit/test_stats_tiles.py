"""`tile`: the coarsest day, hour and 5-minute rows that cover a range exactly."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.stats_queries import OPEN_END, OPEN_START, tile

STEP = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_all_time_is_one_range_of_days():
    assert tile(OPEN_START, OPEN_END, "1d") == [("1d", OPEN_START, OPEN_END)]


def test_edges_are_read_from_hours_then_five_minutes():
    got = tile("2024-01-01T10:05:00.000Z", "2024-01-03T02:10:00.000Z", "1d")
    assert got == [
        ("1d", "2024-01-02T00:00:00.000Z", "2024-01-03T00:00:00.000Z"),
        ("1h", "2024-01-01T11:00:00.000Z", "2024-01-02T00:00:00.000Z"),
        ("5m", "2024-01-01T10:05:00.000Z", "2024-01-01T11:00:00.000Z"),
        ("1h", "2024-01-03T00:00:00.000Z", "2024-01-03T02:00:00.000Z"),
        ("5m", "2024-01-03T02:00:00.000Z", "2024-01-03T02:10:00.000Z"),
    ]


def test_no_tile_is_coarser_than_the_bucket():
    got = tile("2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z", "1h")
    assert got == [("1h", "2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z")]


@given(
    first=st.integers(0, 3 * 288),
    length=st.integers(0, 3 * 288),
    coarsest=st.sampled_from(["5m", "1h", "1d"]),
)
def test_tiles_cover_each_five_minutes_of_the_range_once(first, length, coarsest):
    start = ORIGIN + first * STEP["5m"]
    end = start + length * STEP["5m"]
    covered = []
    for grain, lo, hi in tile(_at(start), _at(end), coarsest):
        assert STEP[grain] <= STEP[coarsest]
        moment = datetime.fromisoformat(lo)
        while moment < datetime.fromisoformat(hi):
            covered.extend(_at(moment + i * STEP["5m"]) for i in range(STEP[grain] // STEP["5m"]))
            moment += STEP[grain]
    assert covered.count(_at(start)) == (1 if length else 0)
    assert sorted(covered) == [_at(start + i * STEP["5m"]) for i in range(length)]
