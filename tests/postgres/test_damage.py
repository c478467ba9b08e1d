"""A PostgreSQL log whose head and events disagree is found by `quick_check` and appends stop."""

from __future__ import annotations

import pytest

from store import StoreCorrupt
from tests.support import new_event


def test_quick_check_passes_a_sound_log_and_a_fresh_one(pg_store):
    assert pg_store.quick_check() is None
    pg_store.append_many([new_event(f"e{n}") for n in range(3)])
    assert pg_store.quick_check() is None
    assert pg_store.last_close_clean()


def test_head_ahead_of_the_events_is_damage_and_stops_appends(pg_store, pg_admin):
    pg_store.append_many([new_event(f"e{n}") for n in range(3)])
    pg_admin.execute("UPDATE log_head SET position = position + 5")
    found = pg_store.quick_check()
    assert found == "the head names position 8, the newest event is at 3"
    with pytest.raises(StoreCorrupt, match="nothing more is appended"):
        pg_store.append(new_event("after-damage"))
    assert pg_store.check_writable().startswith("damaged: ")
    assert pg_admin.execute("SELECT count(*) FROM events").fetchone() == (3,)
