"""Child processes of `ikledger serve`, and the small files they share.

`Child` is the parent's handle on one child (the read models' catch-up child,
`receiver.runtime.catchup`, and each request worker, `receiver.runtime.supervisor`):

- the child dies with its parent, however the parent dies (SIGKILL included): it is
  given the read end of a pipe whose only write end the parent holds
  (`--parent-fd`, `--parent-pid`) and calls `wait_for_parent_exit`, which returns
  when that pipe reports end of file (checking the parent's pid as well, every second);
- a child that dies is started again (after `RESTART_DELAY`, doubling up to
  `RESTART_DELAY_MAX` while it keeps dying; reset once one ran for 30 s); a clean
  exit (0, or SIGTERM) is no crash: it is logged only when no stop follows it;
- `stop()` closes the pipe and waits a bounded time before terminating, then killing,
  the child; `signal_stop()` + `wait_stopped()` do it for several children at once.

`write_json`/`read_json` keep a small record in a file replaced whole, which every
process reads; `process_alive` tells whether a pid named in one still runs.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger("ikledger.children")

RESTART_DELAY = 0.5  # seconds before a dead child is started again
RESTART_DELAY_MAX = 10.0
HEALTHY_AFTER = 30.0  # a child that ran this long was not crash-looping
# Exit codes of a child that was asked to stop (its SIGTERM handler, or none): not a crash.
CLEAN_EXITS = (0, -signal.SIGTERM)


class Child:
    """One child process: started, watched and restarted by its own thread.

    `command` is the child's command line, to which `--parent-fd` and `--parent-pid`
    are added; `label` names it in the log ("request worker 0"). `on_change()` is
    called whenever `running`, `restarts` or `last_exit` change, from whichever thread
    changed them.
    """

    def __init__(
        self,
        label: str,
        command: list[str],
        env: dict,
        *,
        on_change: Callable[[], None] | None = None,
        restart_delay: float = RESTART_DELAY,
    ):
        self.label = label
        self.command = command
        self.env = env
        self.on_change = on_change
        self.restart_delay = restart_delay  # the first wait before a restart
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
        name = "ikledger-" + self.label.replace(" ", "-")
        self._watcher = threading.Thread(target=self._watch, name=name, daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        """Under the lock: a fresh pipe and child; the old pipe (if any) is closed."""
        read_end, write_end = os.pipe()
        args = [*self.command, "--parent-fd", str(read_end), "--parent-pid", str(os.getpid())]
        try:
            self._proc = subprocess.Popen(args, env=self.env, pass_fds=(read_end,))
            self._started_at = time.monotonic()
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        if self._pipe is not None:
            os.close(self._pipe)
        self._pipe = write_end
        log.info("%s running in process %d", self.label, self._proc.pid)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("could not share the state of the %s", self.label)

    def _watch(self) -> None:
        delay = self.restart_delay
        while not self._stopping.is_set():
            proc = self._proc
            code = proc.wait()
            if self._stopping.is_set():
                return
            self.last_exit = code
            self._changed()
            if time.monotonic() - self._started_at >= HEALTHY_AFTER:
                delay = self.restart_delay  # it had been running well: not a crash loop
            if code in CLEAN_EXITS:
                # A child exits cleanly when asked to stop: a SIGTERM sent to the whole
                # group (systemd, `kill -TERM -PGID`) reaches it before this process stops
                # it. Only when no stop follows within the delay is it news.
                if self._stopping.wait(delay):
                    return
                log.warning(
                    "%s (process %d) exited (%s) while the server runs; restarting it",
                    self.label,
                    proc.pid,
                    code,
                )
            else:
                log.error(
                    "%s (process %d) exited (%s); restarting in %.1f s",
                    self.label,
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

    def signal_stop(self, *, terminate: bool) -> None:
        """Stop restarting it and close its pipe; `terminate` also sends SIGTERM now."""
        self._stopping.set()
        with self._lock:
            proc, pipe, self._pipe = self._proc, self._pipe, None
        if pipe is not None:
            os.close(pipe)
        if terminate and proc is not None and proc.poll() is None:
            proc.terminate()

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the child until `deadline` (monotonic), then kill it."""
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", self.label)
                proc.kill()
                proc.wait()
        if self._watcher is not None:
            self._watcher.join(1.0)

    def stop(self, timeout: float) -> None:
        """End of file on its pipe, then SIGTERM, then SIGKILL, `timeout` apart. Idempotent."""
        self.signal_stop(terminate=False)
        proc = self._proc
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


def wait_for_parent_exit(fd: int, parent_pid: int, poll: float = 1.0) -> None:
    """In a child: return once the parent has exited (EOF on its pipe, or a new parent pid)."""
    while os.getppid() == parent_pid:
        ready, _, _ = select.select([fd], [], [], poll)
        if ready and not os.read(fd, 1):
            return


def write_json(path: str, value) -> None:
    """Replace the file at `path` whole with `value` as JSON: a reader sees the old or the new."""
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(partial, "w", encoding="utf-8") as out:
        json.dump(value, out)
    os.replace(partial, path)


def read_json(path: str):
    """The value `write_json` last wrote at `path`; None when there is none (yet)."""
    try:
        with open(path, encoding="utf-8") as source:
            return json.load(source)
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Whether process `pid` still exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True
