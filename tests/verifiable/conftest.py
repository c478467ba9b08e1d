"""The Go verifier (goverifier/main.go), built once per session with Go's reference code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "goverifier" / "main.go"
GOPATH = "/usr/share/gocode"  # where Debian's golang-golang-x-mod-dev puts the source
INSTALL = (
    "Go or golang.org/x/mod is missing: install them "
    "(apt-get install golang-go golang-golang-x-mod-dev)"
)


def go_required() -> bool:
    """A missing Go fails the run in CI (or with IKLEDGER_REQUIRE_GO=1) instead of skipping."""
    return (
        os.environ.get("CI", "").lower() == "true" or os.environ.get("IKLEDGER_REQUIRE_GO") == "1"
    )


@pytest.fixture(scope="session")
def go_verifier(tmp_path_factory) -> Path:
    """The path of the built verifier; skips (or fails where required) without Go."""
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/golang.org/x/mod/sumdb/tlog").is_dir():
        if go_required():
            pytest.fail(INSTALL, pytrace=False)
        pytest.skip(INSTALL)
    folder = tmp_path_factory.mktemp("goverifier")
    binary = folder / "goverifier"
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: offline, from Debian's source tree
        "GOPATH": GOPATH,
        "GOCACHE": str(folder / "cache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    built = subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr.decode()
    return binary
