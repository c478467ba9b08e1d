"""A throwaway PostgreSQL cluster for the tests, started from the local server binaries.

`initdb` into a temporary folder, then `pg_ctl -w start` with durable settings (fsync and
synchronous_commit on: the tests check durability, so the server must provide it), on a
free loopback port, its unix socket inside the folder. As root, the server runs as the
`postgres` user (PostgreSQL refuses to run as root). Fault tests stop it (`stop("immediate")`
is a crash), start it again and terminate backends.

`IKLEDGER_TEST_POSTGRES_DSN` uses an existing server instead; it cannot be stopped, so the
tests that crash the server ask for `cluster.require_control()`, which skips them there.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

INSTALL_HINT = (
    "PostgreSQL server not found: install it (Debian: apt-get install postgresql) "
    "or set IKLEDGER_TEST_POSTGRES_DSN"
)
SUPERUSER = "ikledger"


def find_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: on PATH, else Debian's newest version."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def required() -> bool:
    """A missing server fails the run in CI (or when asked), instead of skipping."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("IKLEDGER_REQUIRE_POSTGRES") == "1"
    )


def missing(reason: str) -> None:
    """Skip the calling test with `reason`, or fail it where a server is required."""
    import pytest

    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A PostgreSQL server the tests may use; subclasses say whether they may crash it."""

    def __init__(self, dsn: str):
        self.admin_dsn = dsn  # connects to the maintenance database as a superuser
        self._counter = 0

    def dsn(self, dbname: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def url(self, dbname: str) -> str:
        """The DSN as a `postgresql://` URL (what IKLEDGER_DB takes)."""
        parts = conninfo_to_dict(self.admin_dsn)
        auth = parts.get("user", "")
        if parts.get("password"):
            auth += ":" + parts["password"]
        host = parts.get("host", "127.0.0.1")
        return f"postgresql://{auth}@{host}:{parts.get('port', 5432)}/{dbname}"

    @contextmanager
    def admin(self, dbname: str | None = None) -> Iterator[psycopg.Connection]:
        """An autocommit superuser connection (to `dbname`, or the maintenance database)."""
        target = self.dsn(dbname) if dbname else self.admin_dsn
        with psycopg.connect(target, autocommit=True, connect_timeout=10) as conn:
            yield conn

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        self._counter += 1
        name = f"ikl_{os.getpid()}_{self._counter}_{secrets.token_hex(3)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate_backends(self, dbname: str, *, application_name: str | None = None) -> int:
        """Kill every other connection to `dbname` (pg_terminate_backend); returns how many."""
        sql = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        params: list = [dbname]
        if application_name is not None:
            sql += " AND application_name = %s"
            params.append(application_name)
        with self.admin() as conn:
            return conn.execute(sql, params).fetchone()[0]

    @property
    def controllable(self) -> bool:
        return False

    def require_control(self) -> None:
        import pytest

        pytest.skip("this test stops the server: it needs the throwaway cluster")

    def stop(self, mode: str = "fast") -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def ensure_running(self) -> None:
        pass

    def close(self) -> None:
        pass


class ExternalServer(Cluster):
    """A server given by IKLEDGER_TEST_POSTGRES_DSN: used, never stopped."""


class LocalCluster(Cluster):
    """A cluster initdb'd into a temporary folder; removed by `close`."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp folder: that one is private to root, and the server
        # (run as `postgres`) must traverse every parent of its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="ikledger-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "socket"
        self.logfile = self.root / "server.log"
        self.port = _free_port()
        password = secrets.token_hex(8)
        self.sockets.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        if self.as_root:
            for path in (self.root, self.sockets, pwfile):
                shutil.chown(path, "postgres", "postgres")
            self._check_traversable()
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the cluster's own files: their loss only loses this test run
        )
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# ikledger test cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "full_page_writes = on\n"
                "max_connections = 200\n"
                "shared_buffers = 32MB\n"
                "log_min_messages = warning\n"
                "log_line_prefix = '%m [%p] %d '\n"
            )
        super().__init__(
            make_conninfo(
                host="127.0.0.1",
                port=self.port,
                user=SUPERUSER,
                password=password,
                dbname="postgres",
            )
        )
        self.start()

    def _check_traversable(self) -> None:
        for parent in self.root.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise RuntimeError(
                    f"{parent} is not traversable by the postgres user; set TMPDIR elsewhere"
                )

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=120, cwd="/"
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n"
                + self.log_tail()
            )
        return result

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def controllable(self) -> bool:
        return True

    def require_control(self) -> None:
        pass

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `immediate` is a crash (no checkpoint, recovery on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def close(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster | str:
    """The cluster the tests use, or the reason there is none."""
    dsn = os.environ.get("IKLEDGER_TEST_POSTGRES_DSN")
    if dsn:
        return ExternalServer(dsn)
    bindir = find_binaries()
    if bindir is None:
        return INSTALL_HINT
    return LocalCluster(bindir)
