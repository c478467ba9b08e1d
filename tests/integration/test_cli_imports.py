"""A read command loads only what it needs: start-up is most of `ikledger timeline`'s time.

Run in a fresh interpreter over files already migrated, the command must answer without
importing the web stack, the PostgreSQL driver, sqlite-utils (migrations are checked
with plain sqlite3) or the modules of the rebuild and the admin commands.
"""

from __future__ import annotations

import json
import subprocess
import sys

from projections import ProjectionRunner, open_projections
from store import SQLiteStore
from tests.projections_helpers import SAMPLE, video_event

NOT_NEEDED = (
    "falcon",
    "jinja2",
    "psycopg",
    "sqlite_utils",
    "concurrent.futures",
    "tempfile",
    "shutil",
    "receiver.admin",
    "receiver.validation",
    "receiver.app",
)

# Runs the command in-process, then reports what it had to import.
PROBE = """
import json, sys
from receiver.cli import cli
cli.main(sys.argv[1:], standalone_mode=False)
print(json.dumps(sorted(m for m in {not_needed!r} if m in sys.modules)), file=sys.stderr)
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    code = PROBE.format(not_needed=NOT_NEEDED)
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, timeout=60
    )


def test_timeline_json_imports_nothing_it_does_not_use(tmp_path):
    db = tmp_path / "log.db"
    with SQLiteStore(db) as store:
        store.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
        with open_projections(store, tmp_path / "log.projections.db") as views:
            ProjectionRunner(views).catch_up()
    result = _run("timeline", "--db", str(db), SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transformations"][0]["status"] == "accepted"
    assert json.loads(result.stderr.splitlines()[-1]) == []


def test_a_new_log_is_migrated_on_first_use(tmp_path):
    # The check is only a short cut: files that need a migration still get it.
    db = tmp_path / "new.db"
    result = _run("status", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "sqlite_utils" in json.loads(result.stderr.splitlines()[-1])
    with SQLiteStore(db) as store:
        assert store.last_position() == 0
    again = _run("status", "--db", str(db))
    assert again.returncode == 0, again.stderr
    assert "sqlite_utils" not in json.loads(again.stderr.splitlines()[-1])
