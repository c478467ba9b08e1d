"""A read command loads only what it needs: start-up is most of `ikledger timeline`'s time.

Run in a fresh interpreter over files already migrated, the command must answer without
importing the web stack, the PostgreSQL driver, OpenSSL (hashlib), sqlite-utils (migrations
are checked with plain sqlite3), subprocess (the children of serve), forwarding, or the
modules of the rebuild, the listings and the other commands; `--help` lists every command
without importing any of their modules.
"""

from __future__ import annotations

import json
import subprocess
import sys

from projections import ProjectionRunner, open_projections
from store import SQLiteStore
from store.sqlite_engine import sqlite3
from tests.projections_helpers import SAMPLE, video_event

NOT_NEEDED = (
    "falcon",
    "waitress",
    "jinja2",
    "prometheus_client",
    "psycopg",
    "sqlite_utils",
    "concurrent.futures",
    "tempfile",
    "shutil",
    "hashlib",
    "subprocess",
    "store.forwarding",
    "receiver.runtime.children",
    "receiver.events",
    "receiver.ingest.validation",
    "receiver.http.app",
    "receiver.cli.log",
    "receiver.cli.db",
    "receiver.cli.tables",
    "store.postgres",
    "projections.listings",
    "projections.rebuild",
    "projections.cache",
)
# Besides those, `--help` needs none of the commands' modules (click's help formatter
# itself reads the terminal's size through shutil).
NOT_NEEDED_FOR_HELP = (
    *(m for m in NOT_NEEDED if m != "shutil"),
    "receiver.cli.read",
    "store.sqlite",
    "projections.db",
    "projections.runner",
)

# Runs the command in-process, then reports what it had to import.
PROBE = """
import json, sys
from receiver.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="ikledger", standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in {not_needed!r} if m in sys.modules)), file=sys.stderr)
"""


def _run(*args: str, not_needed: tuple[str, ...] = NOT_NEEDED) -> subprocess.CompletedProcess:
    code = PROBE.format(not_needed=not_needed)
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


def test_help_lists_the_commands_without_importing_them():
    result = _run("--help", not_needed=NOT_NEEDED_FOR_HELP)
    assert result.returncode == 0, result.stderr
    assert "timeline" in result.stdout and "db-role" in result.stdout
    assert json.loads(result.stderr.splitlines()[-1]) == []


def test_a_read_command_catches_up_only_the_read_model_it_answers_from(tmp_path):
    db = tmp_path / "log.db"
    with SQLiteStore(db) as store:
        store.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
        with open_projections(store, tmp_path / "log.projections.db") as views:
            ProjectionRunner(views).catch_up()
        store.append(video_event("a2", "ready", "2024-01-01T00:00:09.000Z"))
    result = _run("timeline", "--db", str(db), SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transformations"][0]["status"] == "ready"
    with sqlite3.connect(tmp_path / "log.projections.db") as conn:
        checkpoints = dict(conn.execute("SELECT name, checkpoint FROM projection_meta"))
    # The timeline folded the new event; the search index and the type counts, which
    # `timeline` does not read, are left to the next catch-up (serve's, or their command's).
    assert checkpoints["timeline"] == 2
    assert checkpoints["search"] == checkpoints["event_types"] == 1
