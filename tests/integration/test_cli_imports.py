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
    "logging",  # loaded by the first record (store.lazylog): a read that succeeds logs none
    "signal",
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
    "receiver.timespec",  # only for a time given (--as-of, --since)
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


# Runs the command in-process with every SQLite connection traced, then reports the
# files it opened (one entry per connection) and the statements it ran.
TRACED = """
import json, os, sys
from store.sqlite_engine import sqlite3
opened, statements = [], []
connect = sqlite3.connect
def traced(path, *args, **kwargs):
    conn = connect(path, *args, **kwargs)
    opened.append(os.path.basename(path))
    conn.set_trace_callback(statements.append)
    return conn
sqlite3.connect = traced
from receiver.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="ikledger", standalone_mode=False)
finally:
    print(json.dumps({"opened": opened, "statements": statements}), file=sys.stderr)
"""


def _run(*args: str, not_needed: tuple[str, ...] = NOT_NEEDED) -> subprocess.CompletedProcess:
    code = PROBE.format(not_needed=not_needed)
    return _python(code, *args)


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, timeout=60
    )


def _current_files(tmp_path):
    """A log with one event and its read models, caught up: what a read finds usually."""
    db = tmp_path / "log.db"
    with SQLiteStore(db) as store:
        store.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
        with open_projections(store, tmp_path / "log.projections.db") as views:
            ProjectionRunner(views).catch_up()
    return db


def test_timeline_json_imports_nothing_it_does_not_use(tmp_path):
    db = _current_files(tmp_path)
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
    db = _current_files(tmp_path)
    with SQLiteStore(db) as store:
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


def test_a_read_opens_each_file_once_and_writes_nothing(tmp_path):
    # Each connection reads the whole schema at its first statement: the log and the read
    # models are opened once each (their migrations checked on the connection that then
    # reads), and files that are current take no write transaction.
    db = _current_files(tmp_path)
    result = _python(TRACED, "timeline", "--db", str(db), SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transformations"][0]["status"] == "accepted"
    trace = json.loads(result.stderr.splitlines()[-1])
    assert sorted(trace["opened"]) == ["log.db", "log.projections.db"]
    writes = [
        s
        for s in trace["statements"]
        if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP")
        or s.upper().startswith("BEGIN IMMEDIATE")
    ]
    assert writes == []


def test_a_read_answers_while_a_server_holds_the_read_models_write_lock(tmp_path):
    # A server's catch-up holds the read models' write lock while it applies a batch; a
    # read command over current read models does not wait for it (it used to take the
    # lock to check the binding and each projection's meta row).
    db = _current_files(tmp_path)
    holder = sqlite3.connect(tmp_path / "log.projections.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = _run("timeline", "--db", str(db), SAMPLE, "--json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transformations"][0]["status"] == "accepted"


def test_a_read_migrates_a_log_and_read_models_of_an_older_version(tmp_path):
    # The one-statement check is only a short cut: a log without the newest migration
    # (m014) and read models from before log bindings (m002) are migrated by a read.
    from sqlite_utils import Database

    from store.sqlite import migrations

    built = tmp_path / "built"
    built.mkdir()
    new = _current_files(built)
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m014_created_at_by_block")
    conn.execute("ATTACH DATABASE ? AS new", (str(new),))
    for table in ("events", "tree_hashes"):
        conn.execute(f"INSERT INTO {table} SELECT * FROM new.{table}")
    conn.execute("DETACH DATABASE new")
    conn.close()
    views = tmp_path / "old.projections.db"
    views.write_bytes((built / "log.projections.db").read_bytes())
    with sqlite3.connect(views, isolation_level=None) as conn:
        conn.execute("DROP TABLE log_binding")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm002_log_binding'")
    conn.close()

    result = _run("timeline", "--db", str(old), SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transformations"][0]["status"] == "accepted"
    assert "sqlite_utils" in json.loads(result.stderr.splitlines()[-1])
    with SQLiteStore(old) as store:
        log_id = store.log_id()
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT count(*) FROM created_blocks").fetchone()[0] == 1
    conn.close()
    with sqlite3.connect(views) as conn:
        assert conn.execute("SELECT log_id FROM log_binding").fetchone()[0] == log_id
    conn.close()


def test_what_the_store_logs_during_a_command_stays_off_the_terminal(tmp_path):
    # `logging` loads at the first record, after the group has asked for quiet: the
    # record still goes to no handler, not to `logging.lastResort` (stderr).
    db = _current_files(tmp_path)
    code = """
import sys
from receiver.cli import cli
from store.lazylog import lazy_logger
cli.main(sys.argv[1:], prog_name="ikledger", standalone_mode=False)
assert "logging" not in sys.modules
lazy_logger("ikledger.store").warning("a warning for a server's log")
lazy_logger("projections.runner").error("an error for a server's log")
"""
    result = _python(code, "timeline", "--db", str(db), SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_start_up_imports_run_no_collection_and_leave_the_collector_on():
    # What the CLI imports lives until exit: collections during the imports freed nothing
    # and cost about 3 ms of a read command's CPU. They are paused, then back on.
    # (Loading the package's own code may still cross the threshold once, before its
    # first line runs: a young-generation collection, over little.)
    code = """
import gc, json
runs = []
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
import receiver
package = list(runs)
from receiver.cli import main
print(json.dumps({"package": package, "cli": runs[len(package):], "on": gc.isenabled()}))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert set(found["package"]) <= {0} and len(found["package"]) <= 1
    assert found["cli"] == []
    assert found["on"]


def test_importing_the_cli_leaves_a_paused_collector_paused():
    code = "import gc; gc.disable(); import receiver.cli; print(gc.isenabled())"
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
