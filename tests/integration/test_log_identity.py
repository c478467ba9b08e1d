"""Every log has an identity of its own: given at creation, kept, never copied.

Read models record the identity of the log they were built from (`projections/db.py`),
so a copy of a log (a backup, an export imported elsewhere) must be another log.
Runs over every backend (`tests/backends.py`).
"""

from __future__ import annotations

import io

from receiver.events import export_events, import_events
from store import open_store
from tests import backends
from tests.support import new_event as new

make_store = backends.make_store  # the fixtures, parametrised over every backend
store = backends.store


def test_every_new_log_has_its_own_id(make_store):
    first, second = make_store(), make_store()
    assert isinstance(first.log_id(), str) and len(first.log_id()) == 32
    assert first.log_id() != second.log_id()


def test_log_id_does_not_change_with_appends(store):
    before = store.log_id()
    store.append_many([new(f"e{n}") for n in range(3)])
    assert store.log_id() == before


def test_backup_is_another_log_with_the_same_events(store, tmp_path):
    store.append_many([new(f"e{n}") for n in range(5)])
    target = tmp_path / "backup.db"
    assert store.backup(str(target)) == 5
    with open_store(str(target)) as copy:
        assert copy.verify().head == store.verify().head
        assert copy.log_id() != store.log_id()
        with open_store(str(target)) as again:  # the copy's own id is kept
            assert again.log_id() == copy.log_id()


def test_export_imported_elsewhere_is_another_log(make_store):
    source, target = make_store(), make_store()
    source.append_many([new(f"e{n}") for n in range(4)])
    out = io.BytesIO()
    export_events(source, out)
    import_events(target, out.getvalue().splitlines())
    assert target.verify().head == source.verify().head
    assert target.log_id() != source.log_id()
