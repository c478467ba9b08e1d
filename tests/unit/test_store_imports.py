"""Backends are imported only when selected; a missing PostgreSQL driver is a clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess:
    """Python in a fresh interpreter, so `sys.modules` starts empty."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_store_and_opening_a_sqlite_log_never_imports_psycopg(tmp_path):
    result = run(
        f"""
        import sys
        import store
        assert "store.sqlite" not in sys.modules, "store imported its SQLite backend eagerly"
        log = store.open_store({str(tmp_path / "log.db")!r})
        log.append(store.NewEvent("e1", "t", "2024-01-01T00:00:00.000Z", b"{{}}", "x-ik-signature"))
        log.close()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool"))
        assert not loaded and "store.postgres" not in sys.modules, loaded
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
