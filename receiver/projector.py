"""The read models' catch-up in a child process of `ikledger serve`.

`Projector(config).start()` runs `python -m receiver.projector` on the same log and
read-model file: a `ProjectionRunner` that catches up, then sleeps on `store.wait`.
The request process then spends no CPU (and no GIL) on projections; `/healthz` and
`/metrics` still read every projection's checkpoint and lag from the shared file.

- The child dies with its parent, however the parent dies (SIGKILL included): it
  holds the read end of a pipe whose only write end is the parent's, and exits when
  that pipe reports end of file (checking the parent's pid as well, every second).
- A child that dies is started again by the parent (after `RESTART_DELAY`, doubling
  up to `RESTART_DELAY_MAX` while it keeps dying); `status()` says so meanwhile.
- `stop()` closes the pipe, then waits a bounded time before terminating the child.

Two catch-ups on one file are safe (see `projections.catchup`), so a child still
finishing its pass while a new one starts loses or doubles nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time

from .config import Config

log = logging.getLogger("ikledger.projector")

RESTART_DELAY = 0.5  # seconds before a dead child is started again
RESTART_DELAY_MAX = 10.0
STOP_WAIT = 10.0  # seconds a stopping child may take to finish its pass
# After a pass that applied events, the child lets the next ones gather this long:
# each pass has a fixed cost (its read-model transaction and fsync, checkpoints), so
# fewer, larger passes cost less per event; a new event is served at most about this
# much later (the freshness target is 1 s).
PASS_SPACING = 0.2


class Projector:
    """The parent's handle on the catch-up child: start, watch and restart, stop."""

    def __init__(self, config: Config, *, log_level: str = "INFO", on_change=None):
        self.config = config
        self.log_level = log_level
        # Called with `status()` whenever it changes (start, exit, restart), from
        # whichever thread changed it; `serve --workers N` shares it with its workers.
        self.on_change = on_change
        self.restarts = 0  # children started again after dying
        self.last_exit: int | None = None  # return code of the last child that died
        self._proc: subprocess.Popen | None = None
        self._pipe: int | None = None  # the write end the child watches
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Start the child and the thread that restarts it when it dies."""
        with self._lock:
            self._spawn()
        self._changed()
        self._watcher = threading.Thread(target=self._watch, name="ikledger-projector", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        """Under the lock: a fresh pipe and child; the old pipe (if any) is closed."""
        read_end, write_end = os.pipe()
        env = {
            **os.environ,
            "IKLEDGER_DB": self.config.db,
            "IKLEDGER_PROJECTIONS_DB": os.path.abspath(self.config.projections_path()),
            "IKLEDGER_DB_TIMEOUT": str(self.config.db_timeout),
        }
        args = [sys.executable, "-m", "receiver.projector", "--parent-fd", str(read_end)]
        args += ["--parent-pid", str(os.getpid()), "--log-level", self.log_level]
        try:
            self._proc = subprocess.Popen(args, env=env, pass_fds=(read_end,))
            self._started_at = time.monotonic()
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        if self._pipe is not None:
            os.close(self._pipe)
        self._pipe = write_end
        log.info("read-model catch-up running in process %d", self._proc.pid)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self.status())
            except Exception:
                log.exception("could not share the catch-up process's status")

    def _watch(self) -> None:
        delay = RESTART_DELAY
        while not self._stopping.is_set():
            proc = self._proc
            code = proc.wait()
            if self._stopping.is_set():
                return
            self.last_exit = code
            self._changed()
            if time.monotonic() - self._started_at >= 30:
                delay = RESTART_DELAY  # it had been running well: not a crash loop
            log.error(
                "read-model catch-up process %d exited (%s); restarting in %.1f s",
                proc.pid,
                code,
                delay,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn()
                self.restarts += 1
            self._changed()
            delay = min(delay * 2, RESTART_DELAY_MAX)  # one that keeps dying waits longer

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def status(self) -> dict:
        """For /healthz: whether the child runs, its pid, restarts and last exit code."""
        return {
            "process": "child",
            "running": self.running,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop the child: end of file on its pipe, then SIGTERM, then SIGKILL. Idempotent."""
        self._stopping.set()
        with self._lock:
            proc, pipe, self._pipe = self._proc, self._pipe, None
        if pipe is not None:
            os.close(pipe)
        if proc is None:
            return
        for step in (None, proc.terminate, proc.kill):
            if step is not None:
                step()
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._watcher is not None:
            self._watcher.join(timeout)


# -- the child ----------------------------------------------------------------------


def _parent_gone(fd: int, parent_pid: int, poll: float = 1.0) -> None:
    """Return once the parent has exited: EOF on its pipe, or a different parent pid."""
    while os.getppid() == parent_pid:
        ready, _, _ = select.select([fd], [], [], poll)
        if ready and not os.read(fd, 1):
            return


def _catch_up(runner, store, stop: threading.Event, spacing: float = PASS_SPACING) -> None:
    """The child's catch-up loop: `runner.poll_once` passes, `spacing` apart while busy."""
    while not stop.is_set():
        try:
            # Read before the pass: an event appended during it wakes the wait at once.
            seen = store.last_position()
            applied = runner.poll_once()
            if any(applied.values()) and stop.wait(spacing):
                return
            store.wait(seen, runner.idle_wait)
        except Exception:  # never let the loop die silently, nor spin
            log.exception("read-model catch-up pass failed")
            stop.wait(runner.idle_wait)


def main(argv: list[str] | None = None) -> int:
    """Catch up the read models until the parent exits (or SIGTERM)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.projector")
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C stops the parent, then us

    import projections
    from store import open_store

    config = Config.from_env()
    store = open_store(config.db, timeout=config.db_timeout, rejected_keep=config.rejected_keep)
    try:
        views = projections.open_projections(store, config.projections_path())
        runner = projections.ProjectionRunner(views)
        stop = threading.Event()
        loop = threading.Thread(
            target=_catch_up, args=(runner, store, stop), name="ikledger-projections"
        )
        loop.start()
        try:
            _parent_gone(args.parent_fd, args.parent_pid)
        finally:
            stop.set()
            loop.join(STOP_WAIT)
            views.close()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
