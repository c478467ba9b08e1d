"""ikledger opens SQLite files through one library: the one `store.sqlite_engine` names.

Two SQLite libraries opening one file in one process do not see each other's POSIX
locks (https://www.sqlite.org/howtocorrupt.html, 2.2.1), so no module of the project,
tests included, may import the interpreter's `sqlite3` itself. The bench keeps it for
its bare baselines, in processes of their own.
"""

import ast
from pathlib import Path

from store.sqlite_engine import sqlite3

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("store", "projections", "receiver", "tests")


def _imports_of_sqlite3(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == "sqlite3" or name.startswith("sqlite3.") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_module_imports_the_interpreters_sqlite3():
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for line in _imports_of_sqlite3(path)
    }
    assert not found, f"import sqlite3 from store.sqlite_engine instead: {sorted(found)}"


def test_the_engine_has_the_rewritten_json_functions():
    # SQLite 3.45 rewrote the JSON functions the read models extract fields with
    # (about 3x cheaper per event: docs/performance.md, the rebuild).
    assert sqlite3.sqlite_version_info >= (3, 45, 0), sqlite3.sqlite_version


def test_the_engine_keeps_temp_tables_on_disk():
    # A build with TEMP_STORE=3 (pysqlite3-binary's) holds the rebuild's 240 MB stage
    # in memory: 375 MB peak RSS against the 256 MB bound.
    conn = sqlite3.connect(":memory:")
    try:
        options = {row[0] for row in conn.execute("PRAGMA compile_options")}
    finally:
        conn.close()
    assert "TEMP_STORE=3" not in options
