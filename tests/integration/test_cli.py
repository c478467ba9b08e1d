"""The `ikledger` command line over a real log."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from receiver.cli import LAZY_COMMANDS, cli
from receiver.ingest.validation import parse_event
from store import NewEvent, SQLiteStore
from store.sqlite_engine import sqlite3
from store.tlog.tree import stored_hash_count
from tests.support import SECRET, invoke_cli, payload, payload_names, run_cli


@pytest.fixture
def filled(db_path):
    with SQLiteStore(db_path) as store:
        for name in payload_names():
            event = parse_event(payload(name))
            store.append(
                NewEvent(event.id, event.type, event.created_at, payload(name), "standard-webhooks")
            )
    return db_path


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def commands() -> list[str]:
    return cli.list_commands(click.Context(cli))


def command(name: str) -> click.Command:
    """The command itself (importing its module, as running it would)."""
    found = cli.get_command(click.Context(cli), name)
    assert found is not None, name
    return found


def test_top_level_help_lists_every_command():
    result = invoke("-h")
    assert result.exit_code == 0
    for name in commands():
        assert name in result.output


def test_every_command_of_the_cli_modules_is_listed():
    # A command defined in a module but missing from the lazy table could never run.
    listed = set(commands())
    modules = {"receiver.cli"} | {module for module, _, _ in LAZY_COMMANDS.values()}
    for module in sorted(modules):
        found = vars(importlib.import_module(module)).values()
        # a group's own subcommands (`destinations add`) run through the group
        grouped = {id(c) for g in found if isinstance(g, click.Group) for c in g.commands.values()}
        for value in found:
            if (
                isinstance(value, click.Command)
                and not isinstance(value, click.Group)
                and id(value) not in grouped
            ):
                assert value.name in listed, f"{module}: {value.name} is not in LAZY_COMMANDS"
                assert command(value.name) is value


def test_help_summaries_are_the_commands_own():
    # `--help` is made from LAZY_COMMANDS without importing the commands; each line must
    # be the one the command itself would give, at any width.
    for name, (_, _, summary) in LAZY_COMMANDS.items():
        real = command(name)
        assert real.help.partition("\n\n")[0].split() == summary.split(), name
        for limit in (20, 45, 80, 200):
            stand_in = click.Command(name, help=summary)
            assert stand_in.get_short_help_str(limit) == real.get_short_help_str(limit), name


LOADED_HELP = """
import click
from receiver.cli import cli
ctx = click.Context(cli)
for name in cli.list_commands(ctx):
    cli.get_command(ctx, name)
cli.main(["--help"], prog_name="ikledger")
"""


def test_help_without_the_commands_loaded_is_the_same_as_with_them():
    env = {**os.environ, "COLUMNS": "80"}
    lazy = run_cli("--help", env=env)
    loaded = subprocess.run(
        [sys.executable, "-c", LOADED_HELP], env=env, capture_output=True, timeout=60, check=False
    )
    assert lazy.returncode == loaded.returncode == 0, (lazy.stderr, loaded.stderr)
    assert lazy.stdout == loaded.stdout
    for name in commands():
        assert f"\n  {name} ".encode() in lazy.stdout, name


def test_an_unknown_command_suggests_one_not_yet_loaded():
    result = run_cli("timelin")  # a fresh process: no command loaded yet
    assert result.returncode == 2
    assert b"No such command 'timelin'. Did you mean 'timeline'?" in result.stderr


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_text(name):
    result = invoke(name, "-h")
    assert result.exit_code == 0
    assert command(name).help and command(name).help.strip()
    assert result.output.startswith(f"Usage: cli {name}") or f" {name} " in result.output


def test_module_entry_point_matches_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "-h"], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0 and b"verify" in result.stdout


def test_serve_without_secret_says_where_to_find_it(db_path):
    result = invoke_cli("serve", db=db_path, env={"IMAGEKIT_WEBHOOK_SECRET": ""})
    assert result.returncode != 0
    assert b"Developer options" in result.stderr and b"Traceback" not in result.stderr


def test_serve_refuses_public_bind_without_read_token(db_path):
    result = invoke_cli(
        "serve", "--host", "0.0.0.0", db=db_path, env={"IMAGEKIT_WEBHOOK_SECRET": SECRET}
    )
    assert result.returncode != 0 and b"IKLEDGER_READ_TOKEN" in result.stderr


def test_status_reports_counts_and_size(filled):
    result = invoke("status", "--json", "--db", str(filled))
    report = json.loads(result.output)
    assert report["events"] == report["last_position"] == len(payload_names())
    assert report["deliveries"] == {"stored": len(payload_names())}
    assert report["events_by_type"]["video.transformation.accepted"] == 2
    assert report["size_bytes"] > 0


def test_events_filters_by_type_and_time(filled):
    result = invoke("events", "--json", "--type", "video.transformation.ready", "--db", str(filled))
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == ["a03031b5-ad5f-4985-8cf5-4de67630f6d7"]
    result = invoke("events", "--json", "--since", "2023-01-01T00:00:00Z", "--db", str(filled))
    assert {json.loads(line)["type"].split(".")[0] for line in result.output.splitlines()} == {
        "upload"
    }
    table = invoke("events", "--db", str(filled)).output
    assert table.splitlines()[0].split() == ["POSITION", "CREATED_AT", "TYPE", "ID"]


def test_events_with_bad_time_is_a_one_line_error(filled):
    result = invoke("events", "--since", "last tuesday", "--db", str(filled))
    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_show_unknown_id_fails_cleanly(filled):
    result = invoke("show", "nope", "--db", str(filled))
    assert result.exit_code == 1 and "no event with id" in result.output


def test_verify_fails_naming_the_changed_position(filled):
    assert invoke("verify", "--db", str(filled)).output.startswith("ok, 8 events")
    conn = sqlite3.connect(filled, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET body = CAST('{}' AS BLOB) WHERE position = 5")
    conn.close()
    result = invoke_cli("verify", db=filled)
    assert result.returncode == 1
    assert b"position 5" in result.stderr


def test_verify_with_expected_head_catches_a_truncated_tail(filled):
    head = json.loads(invoke("status", "--json", "--db", str(filled)).output)["head"]
    assert invoke("verify", "--expect-head", head, "--db", str(filled)).exit_code == 0
    conn = sqlite3.connect(filled, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("DELETE FROM events WHERE position = 8")
    assert invoke("verify", "--db", str(filled)).exit_code == 1  # the tree still holds it
    conn.execute("DROP TRIGGER tree_hashes_no_delete")  # cut the tree's tail too:
    conn.execute("DELETE FROM tree_hashes WHERE idx >= ?", (stored_hash_count(7),))
    conn.close()
    assert invoke("verify", "--db", str(filled)).exit_code == 0  # chain and tree cannot see it
    assert invoke("verify", "--expect-head", head, "--db", str(filled)).exit_code == 1


def test_export_import_round_trip_through_files(filled, tmp_path):
    dump = tmp_path / "events.jsonl"
    assert invoke("export", "-o", str(dump), "--db", str(filled)).exit_code == 0
    copy = tmp_path / "copy.db"
    result = invoke("import", str(dump), "--db", str(copy))
    assert "imported 8 events; 0 already present" in result.output
    result = invoke("import", str(dump), "--db", str(copy))
    assert "imported 0 events; 8 already present" in result.output
    assert invoke("status", "--json", "--db", str(copy)).output.count('"head"') == 1
    heads = [
        json.loads(invoke("status", "--json", "--db", str(p)).output)["head"]
        for p in (filled, copy)
    ]
    assert heads[0] == heads[1]


def test_export_marks_a_pruned_event_and_import_refuses_it_by_name(filled, tmp_path):
    with SQLiteStore(filled) as store:
        third = store.get_positions([3])[0]
        store.erase_bodies("erase", "personal data", position=3)
    dump = tmp_path / "events.jsonl"
    assert invoke("export", "-o", str(dump), "--db", str(filled)).exit_code == 0
    record = json.loads(dump.read_text().splitlines()[2])
    assert record["pruned"] is True and record["body"] is None
    assert record["body_sha256"] == hashlib.sha256(third.body).hexdigest()
    result = invoke("import", str(dump), "--db", str(tmp_path / "copy.db"))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: line 3: ") and third.id in lines[-1]
    assert "pruned" in lines[-1] and "backup" in lines[-1]


def test_import_of_garbage_names_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "{}"}\nnot json\n')
    result = invoke("import", str(bad), "--db", str(tmp_path / "x.db"))
    assert result.exit_code != 0 and "line 1" in result.output


def _garbage_read_models(db_path) -> None:
    views = db_path.with_name(db_path.stem + ".projections.db")
    views.write_bytes(b"this is not a database" * 100)


@pytest.mark.parametrize(
    ("args", "env", "mistake"),
    [
        (("status", "--db", "mysql://nobody@127.0.0.1/none"), {}, "unsupported database"),
        (("status",), {"IKLEDGER_DB_TIMEOUT": "soon"}, "IKLEDGER_DB_TIMEOUT must be a number"),
        (("serve", "--log-level", "loud"), {"IMAGEKIT_WEBHOOK_SECRET": SECRET}, "loud"),
        (("rebuild", "no-such-projection"), {}, "no projection named"),
        (("timeline", "https://x.example/v.mp4"), {}, "the read models in"),
        (("projections",), {}, "the read models in"),
    ],
)
def test_user_mistakes_end_in_one_error_line_and_nonzero_exit(filled, args, env, mistake):
    if "read models" in mistake:
        _garbage_read_models(filled)
    db = [] if "--db" in args else ["--db", str(filled)]
    result = invoke_cli(*args, *db, env=env)
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("Error")]
    assert result.returncode != 0
    assert b"Traceback" not in result.stderr
    assert len(errors) == 1 and mistake in errors[0], result.stderr.decode()


def test_a_sqlite_url_keeps_read_models_beside_its_file_not_in_the_working_directory(
    filled, tmp_path
):
    # Issue 17: a second log given as a URL from the project folder took over the
    # default log's ./ikledger.projections.db.
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = invoke_cli("projections", "--json", db=f"sqlite:///{filled}", cwd=workdir)
    assert result.returncode == 0, result.stderr.decode()
    assert list(workdir.iterdir()) == []
    assert filled.with_name(filled.stem + ".projections.db").exists()


LOG_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("db", "projections_db", "expected"),
    [
        ("logs/ikledger.db", None, "logs/ikledger.projections.db"),
        ("ledger", None, "ledger.projections.db"),
        ("sqlite:///var/ikledger.db", None, "/var/ikledger.projections.db"),
        ("postgresql://ik:pw@db/ikledger", None, f"ikledger-{LOG_ID}.projections.db"),
        ("postgresql://ik:pw@db/ikledger", "/srv/views.db", "/srv/views.db"),
    ],
)
def test_read_models_path_follows_the_log_or_the_setting(db, projections_db, expected):
    from receiver import Config

    assert Config(db=db, projections_db=projections_db).projections_path(LOG_ID) == expected


def test_status_names_the_log_without_reaching_into_the_store(filled):
    report = json.loads(invoke("status", "--json", "--db", str(filled)).output)
    assert report["database"].endswith(filled.name) and report["events"] == len(payload_names())


def test_the_console_entry_freezes_what_the_imports_built(monkeypatch):
    # Short commands spend a tenth of their time collecting garbage among the objects the
    # imports made; `main` moves those out of the collector's sight first.
    import gc

    from receiver.cli import main

    monkeypatch.setattr(sys, "argv", ["ikledger", "--version"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
