"""SQLite errors are classified by result code in one place: transient, corrupt, or a bug."""

from __future__ import annotations

import pytest

from store.contract import StoreCorrupt, StoreError, StoreUnavailable
from store.sqlite.conn import translate
from store.sqlite_engine import sqlite3


def raised(action) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def test_locked_file_is_transient(tmp_path):
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        error = translate(raised(lambda: other.execute("INSERT INTO t VALUES (1)")))
    finally:
        other.close()
        holder.close()
    assert type(error) is StoreUnavailable and "SQLITE_BUSY" in str(error)


def test_read_only_file_is_transient(tmp_path):
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.close()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        error = translate(raised(lambda: reader.execute("INSERT INTO t VALUES (1)")))
    finally:
        reader.close()
    assert type(error) is StoreUnavailable and "SQLITE_READONLY" in str(error)


def test_missing_folder_is_transient(tmp_path):
    error = translate(raised(lambda: sqlite3.connect(tmp_path / "no" / "such" / "x.db")))
    assert type(error) is StoreUnavailable and "SQLITE_CANTOPEN" in str(error)


def test_not_a_database_is_corrupt(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"not a database at all " * 100)
    conn = sqlite3.connect(path)
    try:
        error = translate(raised(lambda: conn.execute("SELECT * FROM sqlite_master")))
    finally:
        conn.close()
    assert type(error) is StoreCorrupt and "SQLITE_NOTADB" in str(error)


@pytest.mark.parametrize(
    "sql",
    ["SELEC 1", "SELECT * FROM no_such_table", "INSERT INTO t VALUES (1, 1)"],
    ids=["syntax", "missing-table", "constraint"],
)
def test_programming_errors_are_bugs_not_transient(sql):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a PRIMARY KEY, b)")
    conn.execute("INSERT INTO t VALUES (1, 1)")
    error = translate(raised(lambda: conn.execute(sql)))
    conn.close()
    assert type(error) is StoreError and "internal store error" in str(error)


def test_extended_codes_classify_by_their_primary_code():
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode, error.sqlite_errorname = 778, "SQLITE_IOERR_WRITE"
    assert type(translate(error)) is StoreUnavailable
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode, corrupt.sqlite_errorname = 267, "SQLITE_CORRUPT_VTAB"
    assert type(translate(corrupt)) is StoreCorrupt
