"""Where the log is, how to connect to it, and the one place driver errors are translated."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..contract import StoreCorrupt, StoreError, StoreUnavailable

# SQLSTATEs (or their classes) a retry can cure: the connection (08), resources such as a
# full disk (53), the operator (57: shutdown, statement timeout), a transaction rolled
# back for concurrency (40), a lock not granted in lock_timeout (55P03), a read-only
# server (25006, e.g. a standby before failover), a system I/O error (58).
_TRANSIENT = ("08", "53", "57", "40", "55P03", "25006", "58")
# Data the server itself cannot read: no retry fixes it.
_CORRUPT = ("XX001", "XX002")

APPLICATION_NAME = "ikledger"


def _scrub_raw(text: str) -> str:
    """A location string with anything that looks like a password removed."""
    text = re.sub(r"(://[^/@:]*):[^@/]*@", r"\1@", text)
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text)


class Target:
    """A PostgreSQL location: the full conninfo for the driver, a redacted name for people.

    `display_name` is `postgresql://user@host:port/dbname` (never the password); `scrub`
    removes the password from any text (a driver message) before it leaves the store.
    """

    def __init__(self, location: str, timeout: float):
        try:
            parts = conninfo_to_dict(location)
        except psycopg.Error as exc:
            raise StoreError(
                f"invalid PostgreSQL location {_scrub_raw(location)}: {_scrub_raw(str(exc))}"
            ) from None
        self._password = parts.get("password") or None
        user = parts.get("user", "")
        host = parts.get("host", "")
        port = parts.get("port", "")
        self.display_name = (
            f"postgresql://{user + '@' if user else ''}{host}{':' + port if port else ''}"
            f"/{parts.get('dbname', '')}"
        )
        self.timeout = timeout
        millis = max(1, round(timeout * 1000))
        # Every connection bounds its waits by the store's timeout, and reads and writes
        # at READ COMMITTED whatever the server's default (the append function's lock
        # then always sees the newest head). The server gives up on a lock at half the
        # timeout and on a statement at 4/5 of it, before the group writer's waiter
        # does: a lock wait is reported as one, and a slow append is cancelled rather
        # than committed after its caller was told 503 (the COMMIT itself is not timed:
        # a commit slower than the rest of the timeout still has an unknown outcome).
        options = (
            f"-c lock_timeout={max(1, millis // 2)} "
            f"-c statement_timeout={max(1, millis * 4 // 5)} "
            f"-c idle_in_transaction_session_timeout={millis} "
            r"-c default_transaction_isolation=read\ committed"
        )
        if parts.get("options"):
            options = f"{parts['options']} {options}"
        self._conninfo = make_conninfo(
            location,
            # libpq counts whole seconds and takes 1 as 2
            connect_timeout=str(max(2, math.ceil(timeout))),
            options=options,
            application_name=parts.get("application_name") or APPLICATION_NAME,
        )

    def scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return _scrub_raw(text)

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection (the writer's and the listener's own)."""
        with self.translated("connecting"):
            return psycopg.connect(self._conninfo, autocommit=True)

    def pool(self, *, max_size: int = 8) -> psycopg_pool.ConnectionPool:
        """A pool for reads; connections are checked before use, so a restart costs none."""
        pool = psycopg_pool.ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=max_size,
            timeout=self.timeout,
            name="ikledger",
            open=False,
            check=psycopg_pool.ConnectionPool.check_connection,
        )
        with self.translated("connecting"):
            pool.open(wait=True, timeout=self.timeout)
        return pool

    @contextmanager
    def translated(self, action: str) -> Iterator[None]:
        """Turn any driver error raised inside into the contract's errors, once."""
        try:
            yield
        except StoreError:
            raise
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable(
                f"{self.display_name}: no connection within {self.timeout:g} s while {action}"
            ) from exc
        except psycopg.Error as exc:
            raise self.translate(exc, action) from exc

    def translate(self, exc: psycopg.Error, action: str) -> StoreError:
        state = getattr(exc, "sqlstate", None) or ""
        message = self.scrub(str(exc).strip()) or type(exc).__name__
        text = f"{self.display_name}: {action} failed: {message}"
        if state:
            text += f" (SQLSTATE {state})"
        if state.startswith(_CORRUPT):
            return StoreCorrupt(text)
        if state.startswith(_TRANSIENT):
            return StoreUnavailable(text)
        if not state and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            # No SQLSTATE: the client side lost or could not open the connection.
            return StoreUnavailable(text)
        return StoreError(text)
