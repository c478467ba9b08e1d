"""Configuration: read from the environment here and nowhere else."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

SECRET_HELP = (
    "IMAGEKIT_WEBHOOK_SECRET is not set. Copy the webhook secret (whsec_…) from the "
    "ImageKit dashboard: Developer options → Webhooks, then export IMAGEKIT_WEBHOOK_SECRET "
    "(several secrets separated by commas are all accepted, for rotation)."
)


# What `serve` hands its children (request workers, the catch-up child) beside the
# settings above: private to one `serve`, set by it, never by a user.
SESSION_SEED_ENV = "IKLEDGER_SESSION_SEED"  # hex: the UI's anonymous-session key seed
UI_STATE_ENV = "IKLEDGER_UI_STATE"  # the log page's shared state (receiver.ui.actions)
PROJECTOR_STATUS_ENV = "IKLEDGER_PROJECTOR_STATUS"  # the catch-up child's status file
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess folder
FORWARDER_STATS_ENV = "IKLEDGER_FORWARDER_STATS"  # the forwarding child's attempt counts
FORWARDER_STATUS_ENV = "IKLEDGER_FORWARDER_STATUS"  # the forwarding child's status file


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    """Every setting of the receiver and the CLI (docs/configuration.md); `from_env` reads them."""

    secrets: tuple[str, ...] = ()
    db: str = "ikledger.db"
    projections_db: str | None = None
    read_token: str | None = None
    max_body: int = 1024 * 1024
    tolerance: int = 300
    db_timeout: float = 5.0
    rejected_keep: int = 10_000
    connection_limit: int = 900
    idle_timeout: int = 30
    stuck_after: int = 900
    forward_lease_ttl: float = 5.0  # another receiver takes a dead forwarder's place after this
    workers: int | None = None  # serve's request processes (None: one per core)
    threads: int | None = None  # waitress threads per request process (None: 16 in all)
    log_format: str = "text"  # or "json": one object per line (receiver.logs)
    signing_key: str | None = None  # the file of the checkpoints' Ed25519 private key
    checkpoint_every: float = 60.0  # seconds between checkpoints `serve` signs, at most
    retain: str | None = None  # an age ("90d"): `serve` prunes older bodies once a day
    projections: tuple[str, ...] | None = None  # read models kept current (None: every one)
    # set by `serve` for its children (see the *_ENV names above)
    session_seed: str | None = None
    ui_state: str | None = None
    projector_status: str | None = None
    metrics_dir: str | None = None
    forwarder_stats: str | None = None
    forwarder_status: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Config:
        """Build the configuration from environment variables, then apply overrides.

        Overrides whose value is None are ignored, so CLI options that were not
        given leave the environment's value in place.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        if env.get("IMAGEKIT_WEBHOOK_SECRET"):
            values["secrets"] = parse_secrets(env["IMAGEKIT_WEBHOOK_SECRET"])
        if env.get("IKLEDGER_DB"):
            values["db"] = env["IKLEDGER_DB"]
        if env.get("IKLEDGER_PROJECTIONS_DB"):
            values["projections_db"] = env["IKLEDGER_PROJECTIONS_DB"]
        if env.get("IKLEDGER_READ_TOKEN"):
            values["read_token"] = env["IKLEDGER_READ_TOKEN"]
        if env.get("IKLEDGER_PROJECTIONS"):
            values["projections"] = parse_names(env["IKLEDGER_PROJECTIONS"])
        if env.get("IKLEDGER_LOG_FORMAT"):
            values["log_format"] = env["IKLEDGER_LOG_FORMAT"].strip().lower()
        if env.get("IKLEDGER_SIGNING_KEY"):
            values["signing_key"] = env["IKLEDGER_SIGNING_KEY"]
        if env.get("IKLEDGER_RETAIN"):
            values["retain"] = env["IKLEDGER_RETAIN"]
        for name, key in (
            (SESSION_SEED_ENV, "session_seed"),
            (UI_STATE_ENV, "ui_state"),
            (PROJECTOR_STATUS_ENV, "projector_status"),
            (METRICS_DIR_ENV, "metrics_dir"),
            (FORWARDER_STATS_ENV, "forwarder_stats"),
            (FORWARDER_STATUS_ENV, "forwarder_status"),
        ):
            if env.get(name):
                values[key] = env[name]
        for name, key, kind in (
            ("IKLEDGER_MAX_BODY", "max_body", int),
            ("IKLEDGER_TOLERANCE", "tolerance", int),
            ("IKLEDGER_DB_TIMEOUT", "db_timeout", float),
            ("IKLEDGER_REJECTED_KEEP", "rejected_keep", int),
            ("IKLEDGER_CONNECTION_LIMIT", "connection_limit", int),
            ("IKLEDGER_IDLE_TIMEOUT", "idle_timeout", int),
            ("IKLEDGER_STUCK_AFTER", "stuck_after", int),
            ("IKLEDGER_FORWARD_LEASE_TTL", "forward_lease_ttl", float),
            ("IKLEDGER_WORKERS", "workers", int),
            ("IKLEDGER_THREADS", "threads", int),
            ("IKLEDGER_CHECKPOINT_EVERY", "checkpoint_every", float),
        ):
            if env.get(name):
                values[key] = _number(name, env[name], kind)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("secrets"), str):
            values["secrets"] = parse_secrets(values["secrets"])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if self.max_body <= 0:
            raise ConfigError("IKLEDGER_MAX_BODY must be a positive number of bytes")
        if self.connection_limit <= 0 or self.idle_timeout <= 0:
            raise ConfigError(
                "IKLEDGER_CONNECTION_LIMIT and IKLEDGER_IDLE_TIMEOUT must be positive"
            )
        if self.rejected_keep < 0:
            raise ConfigError("IKLEDGER_REJECTED_KEEP must be a number of rows, 0 or more")
        for name, value in (("IKLEDGER_WORKERS", self.workers), ("IKLEDGER_THREADS", self.threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be 1 or more")
        if self.tolerance <= 0:
            raise ConfigError("IKLEDGER_TOLERANCE must be a positive number of seconds")
        if self.forward_lease_ttl <= 0:
            raise ConfigError("IKLEDGER_FORWARD_LEASE_TTL must be a positive number of seconds")
        if self.projections is not None and not self.projections:
            raise ConfigError("IKLEDGER_PROJECTIONS must name at least one projection")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"IKLEDGER_LOG_FORMAT must be text or json, got {self.log_format!r}")
        if self.retain is not None and not re.fullmatch(r"\d+[dh]", self.retain.strip()):
            raise ConfigError("IKLEDGER_RETAIN must be an age such as 90d or 12h")
        if self.checkpoint_every <= 0:
            raise ConfigError("IKLEDGER_CHECKPOINT_EVERY must be a positive number of seconds")

    def anonymous_session_seed(self) -> bytes | None:
        """The key seed of the UI's sessions when no read token is set.

        `serve` draws one and hands it to its workers; any other server (`get_app`
        under gunicorn, say) derives it from the webhook secrets, so every process of
        one deployment issues and accepts the same CSRF tokens. None: draw one (a
        process with no secret, such as a test app).
        """
        if self.session_seed:
            return bytes.fromhex(self.session_seed)
        if self.secrets:
            import hashlib  # OpenSSL: only for the pages, not a command's start-up

            return hashlib.sha256(b"ikledger ui seed\n" + self.secrets[0].encode()).digest()
        return None

    def child_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment of a child of `serve`: `base`, with this log and its read models pinned.

        Call it on the configuration `receiver.runtime.wiring.for_log` resolved for the
        opened log: a log given as a URL names its read models by its identity, which
        only the opened log knows (ValueError otherwise).
        """
        return {
            **base,
            "IKLEDGER_DB": self.db,
            "IKLEDGER_PROJECTIONS_DB": os.path.abspath(self.projections_path()),
            "IKLEDGER_DB_TIMEOUT": str(self.db_timeout),
        }

    def projections_path(self, log_id: str | None = None) -> str:
        """The read models' file: IKLEDGER_PROJECTIONS_DB, else the log's own (`log_id`'s).

        The one place that decides it. A SQLite log (`X.db`, `sqlite:///…/X.db`) keeps
        them beside its file, `X.projections.db`; any other log (`postgresql://…`) in
        `ikledger-<log_id>.projections.db` in the working directory, so two logs never
        share one file. Raises ValueError for such a log without `log_id`.
        """
        if self.projections_db:
            return self.projections_db
        from projections.db import default_projections_path  # the read models' module

        return default_projections_path(self.db, log_id)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: an address the network cannot reach."""
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_secrets(value: str) -> tuple[str, ...]:
    """Split a comma-separated list of secrets; blanks are dropped."""
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_names(value: str) -> tuple[str, ...]:
    """Split a comma-separated list of names, blanks dropped, order and repeats kept once."""
    return tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))


def _number(name: str, raw: str, kind: type) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
