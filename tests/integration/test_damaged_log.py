"""A damaged SQLite log is loud: reads raise StoreCorrupt, appends stop, a check finds it.

The damage is the one a user met (issue 17): a copy of a log of a few hundred events
with 8 KiB in the middle overwritten by garbage.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys

import pytest

from store import SQLiteStore, StoreCorrupt
from tests.support import ROOT
from tests.support import new_event as new

EVENTS = 400


def damage(path, *, size: int = 8192, seed: int = 17) -> None:
    """Overwrite `size` bytes in the middle of the file with garbage (always the same)."""
    length = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(length // 2)
        file.write(random.Random(seed).randbytes(size))


@pytest.fixture(scope="module")
def sound_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("sound") / "log.db"
    with SQLiteStore(path) as store:
        store.append_many([new(f"evt-{n:04d}") for n in range(EVENTS)])
    return path


@pytest.fixture
def damaged(sound_log, tmp_path):
    path = tmp_path / "copy.db"
    shutil.copyfile(sound_log, path)
    damage(path)
    return path


@pytest.fixture
def open_damaged(damaged):
    store = SQLiteStore(damaged, timeout=2.0)
    yield store
    store.close()


READS = {
    "read_batches": lambda s: [e for batch in s.read_batches(0) for e in batch],
    "get": lambda s: [s.get(f"evt-{n:04d}") for n in range(EVENTS)],
    "verify": lambda s: s.verify(),
    "stats": lambda s: s.stats(),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_reading_a_damaged_log_raises_store_corrupt_naming_it(open_damaged, damaged, read):
    with pytest.raises(StoreCorrupt) as raised:
        READS[read](open_damaged)
    assert str(damaged) in str(raised.value) and "damaged" in str(raised.value)


def test_quick_check_finds_the_damage_and_passes_a_sound_log(open_damaged, sound_log):
    found = open_damaged.quick_check()
    assert found is not None and ("Tree" in found or "malformed" in found)
    with SQLiteStore(sound_log) as sound:
        assert sound.quick_check() is None


def test_store_that_met_damage_appends_nothing_more(open_damaged, damaged):
    with pytest.raises(StoreCorrupt):
        READS["read_batches"](open_damaged)
    with pytest.raises(StoreCorrupt, match="nothing more is appended"):
        open_damaged.append(new("after-damage"))
    with pytest.raises(StoreCorrupt):
        open_damaged.append_many([new("after-damage-2")])
    assert open_damaged.check_writable().startswith("damaged: ")
    open_damaged.close()
    with SQLiteStore(damaged) as again:
        assert again.last_position() == EVENTS  # the rightmost pages are intact


def test_quick_check_alone_stops_appends(open_damaged):
    assert open_damaged.quick_check() is not None
    with pytest.raises(StoreCorrupt):
        open_damaged.append(new("after-check"))


def test_backup_of_a_damaged_log_raises_store_corrupt(open_damaged, tmp_path):
    with pytest.raises(StoreCorrupt):
        open_damaged.backup(tmp_path / "backup.db")


# -- the clean-close marker ----------------------------------------------------------

_OPEN_AND_DIE = """
import os, sys
from store import SQLiteStore
store = SQLiteStore(sys.argv[1])
store.last_position()
print("open", flush=True)
sys.stdin.readline()
os._exit(0)  # no close: as a kill or a crash ends a process
"""


def _die_later(path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", _OPEN_AND_DIE, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout.readline() == b"open\n"
    return process


def _end(process: subprocess.Popen) -> None:
    process.communicate(b"\n", timeout=30)
    assert process.returncode == 0


def test_clean_close_is_remembered(db_path):
    with SQLiteStore(db_path) as store:
        assert store.last_close_clean()  # a new log
    with SQLiteStore(db_path) as store:
        assert store.last_close_clean()


def test_a_process_that_ended_without_close_leaves_an_unclean_close(db_path):
    SQLiteStore(db_path).close()
    _end(_die_later(db_path))
    with SQLiteStore(db_path) as store:
        assert not store.last_close_clean()
    with SQLiteStore(db_path) as store:  # that store closed cleanly
        assert store.last_close_clean()


def test_a_clean_close_while_another_process_has_the_log_open_leaves_it_marked(db_path):
    SQLiteStore(db_path).close()
    other = _die_later(db_path)
    try:
        with SQLiteStore(db_path) as store:
            assert store.last_close_clean()  # the other process is alive
    finally:
        _end(other)  # it dies after this store's clean close
    with SQLiteStore(db_path) as store:
        assert not store.last_close_clean()


def test_a_store_that_met_damage_leaves_the_next_one_to_check(damaged):
    # A server that refused to start on damage must not make the next start skip the
    # check: its clean close keeps the marker an unclean one leaves.
    store = SQLiteStore(damaged, timeout=2.0)
    with pytest.raises(StoreCorrupt):
        READS["read_batches"](store)
    store.close()
    with SQLiteStore(damaged, timeout=2.0) as again:
        assert not again.last_close_clean()
