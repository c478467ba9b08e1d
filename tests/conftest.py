from __future__ import annotations

import pytest

from store import SQLiteStore


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ikledger.db"


@pytest.fixture
def store(db_path):
    opened = SQLiteStore(db_path, timeout=2.0)
    yield opened
    opened.close()
