"""Forwarding in a child process of `ikledger serve`.

The program of `python -m receiver.runtime.forwarder`, which the parent's handle
(`receiver.runtime.handles.ForwarderChild`) starts on the same log: `forwarding.run`,
one forwarder thread per destination that is not paused, each holding its
destination's lease (so several receivers of one log forward each destination once).
Ingest never waits on it and a fault in it never fails a webhook: it is another
process, sharing only the database.

Like the catch-up child (`receiver.runtime.catchup`), it dies with its parent however
the parent dies and is restarted when it dies (`receiver.runtime.children`). Stopping
lets the attempts in flight finish for at most `DRAIN` seconds; an attempt cut short
is made again by the next forwarder (at least once). It counts its attempts by outcome
and latency (`receiver.runtime.attempt_stats`) into the small file
`Config.forwarder_stats` that `/metrics` reads.

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

import forwarding
from receiver import logs
from receiver.config import Config

from .attempt_stats import AttemptStats, write_stats
from .children import wait_for_parent_exit
from .handles import DRAIN, FORWARDER_STOP_WAIT
from .wiring import open_log_store

log = logging.getLogger("ikledger.forwarder")

NICENESS = 10  # forwarding yields the CPU to ingest (issue 18: it must not starve the writer)


def settings(config: Config):
    """The forwarders' settings from the configuration."""
    return forwarding.Settings(
        imagekit_secrets=config.secrets, lease_ttl=config.forward_lease_ttl, drain=DRAIN
    )


def main(argv: list[str] | None = None) -> int:
    """Forward until the parent exits (or SIGTERM, or Ctrl-C without a parent)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.forwarder")
    parser.add_argument("--parent-fd", type=int)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    config = Config.from_env()
    os.nice(NICENESS)
    logs.configure(args.log_level, config.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.parent_fd is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C stops the parent, then us
    else:
        signal.signal(signal.SIGINT, lambda *_: stop.set())

    store = open_log_store(config)
    stats = AttemptStats()
    try:
        loop = threading.Thread(
            target=forwarding.run,
            args=(store, stop),
            kwargs={"settings": settings(config), "on_attempt": stats.observe},
            name="ikledger-forwarding",
        )
        loop.start()
        if config.forwarder_stats:
            threading.Thread(
                target=write_stats,
                args=(stats, config.forwarder_stats, stop),
                name="ikledger-forwarding-stats",
                daemon=True,
            ).start()
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
        loop.join(FORWARDER_STOP_WAIT)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
