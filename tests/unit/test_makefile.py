"""`make serve` installs what serving needs; the test toolchain only comes with `make test`.

Reads the recipes `make -n -B` would run (nothing is run or installed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def recipes(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", "-B", target],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_serve_installs_the_package_without_the_test_toolchain():
    serve = recipes("serve")
    assert "pip install --quiet -e ." in serve
    assert "[test]" not in serve


def test_make_test_installs_the_test_toolchain():
    assert "pip install --quiet -e '.[test]'" in recipes("test")
