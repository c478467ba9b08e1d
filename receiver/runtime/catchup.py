"""The read models' catch-up in a child process of `ikledger serve`.

The program of `python -m receiver.runtime.catchup`, which the parent's handle
(`receiver.runtime.handles.Projector`) starts on the same log and read-model file: a
`ProjectionRunner` that catches up, then sleeps on `store.wait`. The request process
then spends no CPU (and no GIL) on projections; `/healthz` and `/metrics` still read
every projection's checkpoint and lag from the shared file. It runs until its parent
exits (`receiver.runtime.children.wait_for_parent_exit`) or SIGTERM.

The child also keeps the checkpoints (`receiver.checkpoints.Checkpointer`): one every
IKLEDGER_CHECKPOINT_EVERY seconds while the log grows, and one at shutdown; and, under
IKLEDGER_RETAIN, prunes older bodies once a day (`receiver.retention`).

Two catch-ups on one file are safe (see `projections.catchup`), so a child still
finishing its pass while a new one starts loses or doubles nothing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

import projections
from projections import ProjectionError
from receiver import logs
from receiver.config import Config
from store import StoreError

from .children import wait_for_parent_exit
from .handles import CATCHUP_STOP_WAIT
from .wiring import open_log

log = logging.getLogger("ikledger.projector")

# After a pass that applied events, the child lets the next ones gather this long:
# each pass has a fixed cost (its read-model transaction and fsync, checkpoints), so
# fewer, larger passes cost less per event; a new event is served at most about this
# much later (the freshness target is 1 s).
PASS_SPACING = 0.2


def _catch_up(runner, store, stop: threading.Event, spacing: float = PASS_SPACING) -> None:
    """The child's catch-up loop: `runner.poll_once` passes, `spacing` apart while busy.

    A failing pass never ends the loop nor makes it spin. An outage (the database
    down for minutes) logs one line when passes start failing, one when the reason
    changes, and a summary when a pass succeeds again; each failure's traceback is
    at debug level, except for an error the store did not expect (a bug), whose
    first traceback is logged in full.
    """
    failing: str | None = None  # the reason the last pass failed; None when it succeeded
    failed, since = 0, 0.0
    while not stop.is_set():
        try:
            # Read before the pass: an event appended during it wakes the wait at once.
            seen = store.last_position()
            applied = runner.poll_once()
        except Exception as exc:  # never let the loop die silently, nor spin
            reason = f"{type(exc).__name__}: {exc}"
            log.debug("read-model catch-up pass failed", exc_info=True)
            if failing is None:
                failed, since = 0, time.monotonic()
            if reason != failing:
                expected = isinstance(exc, (StoreError, ProjectionError))
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "read-model catch-up failing: %s; retrying every %g s",
                    reason,
                    runner.idle_wait,
                    exc_info=None if expected else exc,
                )
            failing, failed = reason, failed + 1
            stop.wait(runner.idle_wait)
            continue
        if failing is not None:
            log.info(
                "read-model catch-up resumed after %d failed passes (%.0f s)",
                failed,
                time.monotonic() - since,
            )
            failing = None
        try:
            if any(applied.values()):
                # Busy: a pass may have stopped at its time budget with more to apply,
                # so the next one starts after the spacing, without waiting for news.
                if stop.wait(spacing):
                    return
                continue
            store.wait(seen, runner.idle_wait)
        except Exception:  # the log's wait failing is the next pass's news
            log.debug("waiting for the log failed", exc_info=True)
            stop.wait(runner.idle_wait)


def main(argv: list[str] | None = None) -> int:
    """Catch up the read models until the parent exits (or SIGTERM)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.catchup")
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    config = Config.from_env()
    logs.configure(args.log_level, config.log_format)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C stops the parent, then us

    store, views = open_log(config)
    try:
        runner = projections.ProjectionRunner(views, projections.chosen(config.projections))
        stop = threading.Event()
        loop = threading.Thread(
            target=_catch_up, args=(runner, store, stop), name="ikledger-projections"
        )
        checkpoints = checkpointer(config, store)
        retention = retainer(config, store)
        loop.start()
        for helper in (checkpoints, retention):
            if helper is not None:
                helper.start()
        try:
            wait_for_parent_exit(args.parent_fd, args.parent_pid)
        finally:
            stop.set()
            if retention is not None:
                retention.stop()
            if checkpoints is not None:
                checkpoints.stop()  # keeps a last checkpoint if the log grew
            loop.join(CATCHUP_STOP_WAIT)
            views.close()
    finally:
        store.close()
    return 0


def checkpointer(config: Config, store):
    """The serve's one checkpointer (this child is one per serve); None if the key is bad.

    Without IKLEDGER_SIGNING_KEY, checkpoints are kept unsigned. A key that cannot be
    used keeps none (unsigned ones would pass for the signed ones asked for); `serve`
    refuses such a key before it starts this child.
    """
    from receiver.checkpoints import Checkpointer, SigningKeyError, load_signer

    signer = None
    if config.signing_key:
        try:
            signer = load_signer(config.signing_key)
        except SigningKeyError as exc:
            log.error("no checkpoints: %s", exc)
            return None
    return Checkpointer(store, signer, config.checkpoint_every)


def retainer(config: Config, store):
    """The serve's daily prune under IKLEDGER_RETAIN (None without it), which rebuilds the
    read models (its own handle on them) after each prune that removed something."""
    if not config.retain:
        return None
    from receiver.retention import Retention

    def rebuild() -> None:
        import projections

        from .wiring import open_read_models

        views = open_read_models(config, store)
        try:
            projections.ProjectionRunner(views).rebuild(None)
        finally:
            views.close()

    return Retention(store, config.retain, rebuild)


if __name__ == "__main__":
    sys.exit(main())
