"""Shared helpers for the test suite: reference data, signing, a live server."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import chdir, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx

from receiver.ingest.signatures import sign_legacy, sign_standard
from store import NewEvent
from store.sqlite_engine import sqlite3

ROOT = Path(__file__).resolve().parents[1]
# ImageKit's reference data, copied into the repository (see tests/fixtures/imagekit/README.md).
IMAGEKIT = ROOT / "tests" / "fixtures" / "imagekit"
# The documented bodies ship with the product (`ikledger trigger` sends them); the
# fixtures hold only what the product does not ship (the SDK tests' body).
PAYLOADS = ROOT / "receiver" / "cli" / "payloads"
VECTORS = json.loads((IMAGEKIT / "signature-vectors.json").read_text())
SECRET = VECTORS["secret"]
IKLEDGER = str(Path(sys.executable).with_name("ikledger"))


def payload_path(name: str) -> Path:
    """Where a documented example body is: the product's payloads, else the fixtures."""
    shipped = PAYLOADS / f"{name}.json"
    return shipped if shipped.exists() else IMAGEKIT / "payloads" / f"{name}.json"


def payload(name: str) -> bytes:
    """A documented example body, byte for byte."""
    return payload_path(name).read_bytes()


def payload_names() -> list[str]:
    """The bodies of ImageKit's video and upload documentation, and the SDK tests' body."""
    shipped = [*PAYLOADS.glob("video.*.json"), *PAYLOADS.glob("upload.*.json")]
    return sorted(p.stem for p in [*shipped, *(IMAGEKIT / "payloads").glob("*.json")])


def signed(
    body: bytes, *, scheme: str = "standard", secret: str = SECRET, now: float | None = None
) -> dict:
    """Request headers for `body`, signed as ImageKit would sign it at `now`."""
    now = time.time() if now is None else now
    if scheme == "standard":
        headers = sign_standard(secret, f"msg_{uuid.uuid4()}", int(now), body)
    else:
        headers = sign_legacy(secret, int(now * 1000), body)
    return {"content-type": "application/json", **headers}


def event_body(
    event_id: str | None = None, *, type_: str = "video.transformation.accepted", **extra
) -> bytes:
    """A small valid event with a fresh id (or the one given)."""
    document = {
        "type": type_,
        "id": event_id or str(uuid.uuid4()),
        "created_at": "2024-01-02T03:04:05.678Z",
        "request": {
            "x_request_id": str(uuid.uuid4()),
            "url": "https://ik.imagekit.io/demo/v.mp4?tr=f-webm",
        },
        "data": {"asset": {"url": "https://ik.imagekit.io/demo/v.mp4"}},
        **extra,
    }
    return json.dumps(document).encode()


def new_event(
    event_id: str, body: bytes | None = None, type_: str = "video.transformation.accepted"
) -> NewEvent:
    """A NewEvent ready for `store.append`, with a small valid body unless one is given."""
    return NewEvent(
        event_id,
        type_,
        "2024-01-01T00:00:00.000Z",
        body or event_body(event_id),
        "standard-webhooks",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    base: str
    port: int
    db: Path
    process: subprocess.Popen
    output: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")


@contextmanager
def serve(
    db: Path, *, env: dict | None = None, args: tuple = (), timeout: float = 15.0
) -> Iterator[Served]:
    """A real `ikledger serve` on a free loopback port, stdout and stderr kept in a file.

    Unlike a pipe, the file never fills up and blocks the server, and the test can
    read everything the server printed.
    """
    port = free_port()
    output = db.with_suffix(".server.log")
    environment = {**os.environ, "IMAGEKIT_WEBHOOK_SECRET": SECRET, **(env or {})}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [IKLEDGER, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db), *args],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", port, db, process, output)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {served.log_text()}")
            try:
                if httpx.get(f"{served.base}/healthz", timeout=1).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.05)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def live_server(db: Path, *, env: dict | None = None, args: tuple = (), timeout: float = 15.0):
    """A real `ikledger serve` on a free loopback port; yields its base URL."""
    with serve(db, env=env, args=args, timeout=timeout) as served:
        yield served.base


def run_cli(
    *args: str,
    db: Path | str | None = None,
    env: dict | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
):
    """Run the installed `ikledger` command (in `cwd`, default the current directory)."""
    command = [IKLEDGER, *args]
    if db is not None:
        command += ["--db", str(db)]
    return subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        input=input,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True)
class Ran:
    """A command's exit status and output, as `subprocess.run` reports them."""

    returncode: int
    stdout: bytes
    stderr: bytes


def invoke_cli(
    *args: str,
    db: Path | str | None = None,
    env: dict | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> Ran:
    """Run an `ikledger` command in this process with click's CliRunner.

    For commands whose process does not matter (no signals, no serving): no start-up
    of a new interpreter. `env` is laid over the environment for the call; an
    exception the command did not handle goes to stderr as its traceback, as the
    interpreter would print it.
    """
    from click.testing import CliRunner

    from receiver.cli import cli

    command = [*args, *(["--db", str(db)] if db is not None else [])]
    with chdir(cwd) if cwd is not None else nullcontext():
        result = CliRunner().invoke(cli, command, env=env, input=input, prog_name="ikledger")
    stderr = result.stderr_bytes or b""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception)).encode()
    return Ran(result.exit_code, result.stdout_bytes, stderr)


def served_tables(path: Path | str, name: str = "timeline") -> tuple[int, dict[str, list[tuple]]]:
    """A read model's served generation and every row of its tables, sorted, keyed by base name.

    Both are read in one transaction, so they agree even while a rebuild swaps generations.
    """
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("BEGIN")
        (generation,) = conn.execute(
            "SELECT generation FROM projection_meta WHERE name = ?", (name,)
        ).fetchone()
        # Every ordinary table of the generation (not FTS5 tables, whose shadow tables'
        # bytes depend on how the index was merged: compare those by their answers).
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '!'"
            " AND sql NOT LIKE 'CREATE VIRTUAL%'",
            (f"{name.replace('_', '!_')}!_%!_g{generation}",),
        ).fetchall()
        found = {}
        for (table,) in tables:
            base = table[len(name) + 1 : -len(f"_g{generation}")]
            found[base] = sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
        return generation, found
    finally:
        conn.close()


def table_rows(path: Path | str, name: str = "timeline") -> dict[str, list[tuple]]:
    """Every row of the served generation's tables of a read model (see `served_tables`)."""
    return served_tables(path, name)[1]


def query_rows(db: Path | str, sql: str, params: tuple = ()) -> list[tuple]:
    """Read a database the server is using through a separate, read-only connection."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# -- processes ---------------------------------------------------------------------------

BOUND = 20.0  # seconds any awaited state change may take before the test calls it a hang


def wait_for(condition, what: str):
    """Poll `condition` until it gives a true value (returned), failing after BOUND s."""
    deadline = time.monotonic() + BOUND
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {BOUND:g} s"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def damage(path, *, table: str | None = "events", size: int = 8192, seed: int = 17) -> None:
    """Overwrite `size` bytes with garbage (always the same): in the middle page of
    `table` (SQLite's dbstat), or of the file when `table` is None.

    A table's page, not the file's middle: which table the middle of a log holds
    changes with every migration that adds one.
    """
    offset = Path(path).stat().st_size // 2
    if table is not None:
        conn = sqlite3.connect(path)
        try:
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            pages = [
                n
                for (n,) in conn.execute(
                    "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' "
                    "ORDER BY pageno",
                    (table,),
                )
            ]
        finally:
            conn.close()
        offset = (pages[len(pages) // 2] - 1) * page_size
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(random.Random(seed).randbytes(size))
