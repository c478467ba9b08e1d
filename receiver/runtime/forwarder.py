"""Forwarding in a child process of `ikledger serve`.

`ForwarderChild(config).start()` runs `python -m receiver.runtime.forwarder` on the same
log: `forwarding.run`, one forwarder thread per destination that is not paused, each
holding its destination's lease (so several receivers of one log forward each
destination once). Ingest never waits on it and a fault in it never fails a webhook:
it is another process, sharing only the database.

Like the catch-up child (`receiver.runtime.catchup`), it dies with its parent however
the parent dies and is restarted when it dies (`receiver.runtime.children`). Stopping
lets the attempts in flight finish for at most `DRAIN` seconds; an attempt cut short
is made again by the next forwarder (at least once).

Run by hand (`python -m receiver.runtime.forwarder`, no `--parent-fd`) it forwards until
SIGTERM or Ctrl-C: the forwarder of a deployment whose requests a WSGI server of its
own answers (`get_app()` does not forward).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from receiver.config import Config

from .children import Child, wait_for_parent_exit

log = logging.getLogger("ikledger.forwarder")

DRAIN = 5.0  # seconds a stopping forwarder waits for the attempts in flight
STOP_WAIT = DRAIN + 5.0  # seconds the parent gives a stopping child before SIGTERM


def settings(config: Config):
    """The forwarders' settings from the configuration."""
    import forwarding

    return forwarding.Settings(
        imagekit_secrets=config.secrets, lease_ttl=config.forward_lease_ttl, drain=DRAIN
    )


class ForwarderChild(Child):
    """The parent's handle on the forwarding child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO"):
        env = config.child_env(os.environ)
        command = [sys.executable, "-m", "receiver.runtime.forwarder", "--log-level", log_level]
        super().__init__("forwarder", command, env)

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop the child: end of file on its pipe, then SIGTERM, then SIGKILL. Idempotent."""
        super().stop(timeout)


def main(argv: list[str] | None = None) -> int:
    """Forward until the parent exits (or SIGTERM, or Ctrl-C without a parent)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.forwarder")
    parser.add_argument("--parent-fd", type=int)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.parent_fd is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C stops the parent, then us
    else:
        signal.signal(signal.SIGINT, lambda *_: stop.set())

    import forwarding

    from .wiring import open_log_store

    config = Config.from_env()
    store = open_log_store(config)
    try:
        loop = threading.Thread(
            target=forwarding.run,
            args=(store, stop),
            kwargs={"settings": settings(config)},
            name="ikledger-forwarding",
        )
        loop.start()
        if args.parent_fd is not None:
            watcher = threading.Thread(
                target=lambda: (wait_for_parent_exit(args.parent_fd, args.parent_pid), stop.set()),
                name="ikledger-parent",
                daemon=True,
            )
            watcher.start()
        while not stop.wait(1.0):
            if not loop.is_alive():
                log.error("forwarding stopped unexpectedly")
                return 1
        loop.join(STOP_WAIT)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
