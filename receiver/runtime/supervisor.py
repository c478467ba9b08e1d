"""`ikledger serve` with several request processes on one port and one log.

One interpreter answers requests on about one core: its waitress loop, request threads
and group-commit writer share one GIL. So by default `serve` runs one request process
per core (`--workers`), and this module is the process that starts them:

- the **supervisor** (the `serve` process itself) binds the address, opens
  the log and the read models once (so migrations run once, before any worker), then
  starts the workers, the read models' catch-up child (`receiver.runtime.catchup`) and the
  forwarding child (`receiver.runtime.forwarder`), and
  restarts any of them that dies (`receiver.runtime.children`: after 0.5 s, doubling while it
  keeps dying). It answers no request. SIGTERM or Ctrl-C stops the workers (each finishes
  its queued commits), then the forwarder and the catch-up child.
- each **worker** (`python -m receiver.runtime.supervisor`) listens on the same address with
  SO_REUSEPORT (the kernel spreads new connections over the workers) and runs
  waitress there, with its own store and writer thread. The writers of all
  workers take turns through the log's writers' lock (`store/sqlite/commit.py`), and
  every commit assigns positions and recognises ids inside its write transaction, so
  positions stay gap-free, the chain stays one chain, and a duplicate is recognised
  whichever worker received the first copy. An answer is sent only after its commit,
  so a worker killed with SIGKILL loses nothing it acknowledged.
- a worker exits when the supervisor does, however it dies (the pipe whose only write
  end the supervisor holds reports end of file, as for the catch-up child).

What the workers share besides the log: the anonymous UI sessions' key (a random seed
the supervisor hands every worker, so a session and its CSRF token are accepted
whichever worker answers), `/metrics` counters (prometheus_client's multiprocess mode
in a private folder: every worker's counts summed, those of exited workers included),
and the catch-up and forwarding children's state for `/healthz` (small files the
supervisor rewrites).

`--workers 1` runs today's single request process (`receiver.cli.serve` does not come
here at all). `get_app()` is unchanged: a WSGI server of your own decides its processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from functools import partial

from receiver import logs
from receiver.config import (
    FORWARDER_STATS_ENV,
    FORWARDER_STATUS_ENV,
    METRICS_DIR_ENV,
    PROJECTOR_STATUS_ENV,
    SESSION_SEED_ENV,
    UI_STATE_ENV,
    Config,
)

from .children import Child, process_alive, read_json, wait_for_parent_exit, write_json
from .handles import ForwarderChild, Projector

log = logging.getLogger("ikledger.supervisor")

STOP_WAIT = 10.0  # seconds a stopping worker may take to finish its commits
BACKLOG = 1024

# Environment the supervisor sets for its workers (internal; not for users to set).

# Connections that keep every descriptor of the process under select()'s 1024, with
# room for the log's and read models' files of each worker thread.
SELECT_SAFE_CONNECTIONS = 900

# Waitress 3 flushes from the worker thread on every write (send_bytes=1): the headers,
# then the body, each a send() and a wake-up of the main loop. Buffering up to 256 KiB
# (the largest timeline answer is ~200 KB) lets the main loop send the answer in one
# flush (measured: CPU per GET /timeline -41% with the whole-answer cache).
SEND_BYTES = 256 * 1024


def default_workers() -> int:
    """One request process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# Request threads of all workers together by default. Each request holds a thread until
# its group commits, so about as many threads in all as requests in flight keep the
# writers' groups full; more only add wake-ups (measured with 2 workers at 16 wrk
# connections: 8 threads each cost less CPU per request than 16 each).
THREADS_IN_ALL = 16
MIN_THREADS = 4


def default_threads(workers: int) -> int:
    """Waitress threads of each of `workers` request processes: 16 in all, at least 4."""
    return max(MIN_THREADS, THREADS_IN_ALL // workers)


def _one_flush_per_answer() -> dict:
    """`send_bytes`, deprecated since waitress 1.3 with no replacement: passed while the
    installed waitress still has it, without its DeprecationWarning."""
    import warnings

    from waitress.adjustments import Adjustments

    if not hasattr(Adjustments, "send_bytes"):
        return {}
    warnings.filterwarnings("ignore", "send_bytes will be removed", DeprecationWarning)
    return {"send_bytes": SEND_BYTES}


def waitress_options(config: Config, threads: int) -> dict:
    """The keyword arguments of `waitress.serve` for one request process (no address)."""
    return dict(
        threads=threads,
        ident="ikledger",
        # Bodies far over the limit are refused by waitress before they are buffered.
        max_request_body_size=2 * config.max_body,
        clear_untrusted_proxy_headers=True,
        # Idle or trickling clients hold a connection, never a worker thread; past
        # waitress's default of 100 they would stop new connections being accepted.
        connection_limit=config.connection_limit,
        channel_timeout=config.idle_timeout,
        cleanup_interval=max(1, min(30, config.idle_timeout // 2)),
        # select() fails past descriptor 1024 but costs less per loop than
        # waitress's poll(), which re-registers every channel each time round.
        asyncore_use_poll=config.connection_limit > SELECT_SAFE_CONNECTIONS,
        _quiet=True,
        **_one_flush_per_answer(),
    )


def quiet_waitress_queue() -> None:
    """Waitress warns on every request that finds its task queue non-empty; under load
    that is a line per request, costing more than the request. Latency and request
    counts are in /metrics instead."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def bind(host: str, port: int, *, listening: bool, shared: bool = True) -> socket.socket:
    """A socket bound to the address with SO_REUSEPORT, listening or not.

    Each worker listens on a socket of its own, so the kernel spreads new connections
    evenly over them (by a hash of each connection's addresses); one listening socket
    shared by all would go to whichever worker woke first, which under a steady load
    is mostly the same one. The supervisor's socket is bound but never listens: it
    holds the address (and reports a bad one before any worker starts), and a socket
    that does not listen is given no connections.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        if listening:
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class CannotListen(Exception):
    """The address given to `serve` cannot be bound."""


# -- the supervisor -------------------------------------------------------------------


class ProjectorStatus:
    """In a worker: a child's state (the catch-up's, the forwarder's) as the supervisor
    last wrote it."""

    def __init__(self, path: str):
        self.path = path

    def status(self) -> dict:
        status = read_json(self.path)
        if not isinstance(status, dict):
            return {"process": "child", "running": False, "pid": None, "restarts": 0}
        pid = status.get("pid")
        if status.get("running") and pid and not process_alive(pid):
            status["running"] = False  # died since; the supervisor restarts it
        return status


def run(
    config: Config,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    catch_up: str,
    log_level: str,
    announce,
    adopt: bool = False,
) -> None:
    """Serve with `workers` request processes until SIGTERM or Ctrl-C (the supervisor).

    `announce(where)` is called with the log's name once the processes are started.
    Raises CannotListen when the address cannot be bound and StoreError when the log
    cannot be opened or is damaged (`wiring.open_server_log`: `adopt` rebuilds read
    models of another log), before any process is started.
    """
    from .wiring import open_server_log

    try:
        # First without SO_REUSEPORT: an address another server holds (another `serve`
        # with workers included) is refused, rather than shared with it.
        with bind(host, port, listening=False, shared=False) as probe:
            port = probe.getsockname()[1]
        sock = bind(host, port, listening=False)
    except OSError as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc}") from None
    private = tempfile.mkdtemp(prefix="ikledger-serve-")
    catch_up_handle: Projector | _ThreadCatchUp | None = None
    forwarder = None
    started: list[Child] = []
    try:
        # Opened once here: migrations of the log and the read models run before any
        # worker opens them, and a log that cannot be opened stops `serve` at once.
        config, store, views = open_server_log(config, adopt=adopt)
        where = store.display_name
        metrics_dir = os.path.join(private, "metrics")
        os.mkdir(metrics_dir)
        ui_dir = os.path.join(private, "ui")  # the log page's verify and rebuild state
        os.mkdir(ui_dir)
        env = {
            **config.child_env(os.environ),
            SESSION_SEED_ENV: secrets.token_hex(32),
            METRICS_DIR_ENV: metrics_dir,
            UI_STATE_ENV: ui_dir,
        }
        env.pop(PROJECTOR_STATUS_ENV, None)
        stats_path = os.path.join(private, "forwarder-attempts.json")
        env[FORWARDER_STATS_ENV] = stats_path  # the workers' /metrics read it
        forwarder_path = os.path.join(private, "forwarder.json")
        env[FORWARDER_STATUS_ENV] = forwarder_path  # and their /healthz this
        if catch_up == "process":
            status_path = os.path.join(private, "projector.json")
            views.close()
            store.close()
            catch_up_handle = Projector(
                config, log_level=log_level, on_change=partial(write_json, status_path)
            )
            env[PROJECTOR_STATUS_ENV] = status_path
        else:  # a thread of this process, which answers no request
            catch_up_handle = _ThreadCatchUp(store, views, config.projections)
        catch_up_handle.start()
        forwarder = ForwarderChild(
            replace(config, forwarder_stats=stats_path),
            log_level=log_level,
            on_change=partial(write_json, forwarder_path),
        )
        forwarder.start()
        host = sock.getsockname()[0]
        command = [sys.executable, "-m", "receiver.runtime.supervisor", "--threads", str(threads)]
        command += ["--host", host, "--port", str(port), "--log-level", log_level]
        for index in range(workers):
            worker = Child(f"request worker {index}", [*command, "--index", str(index)], env)
            worker.start()
            started.append(worker)
        announce(where)
        _wait_for_stop()
    finally:
        for worker in started:
            worker.signal_stop(terminate=True)  # each finishes its queued commits
        deadline = time.monotonic() + STOP_WAIT
        for worker in started:
            worker.wait_stopped(deadline)
        sock.close()
        if forwarder is not None:
            forwarder.stop()
        if catch_up_handle is not None:
            catch_up_handle.stop()
        shutil.rmtree(private, ignore_errors=True)


class _ThreadCatchUp:
    """`--catch-up thread` with workers: the catch-up runs in the supervisor."""

    def __init__(self, store, views, names=None):
        import projections

        self.store, self.views = store, views
        self.runner = projections.ProjectionRunner(views, projections.chosen(names))

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.views.close()
        self.store.close()


def _wait_for_stop() -> None:
    """Block until SIGTERM (SystemExit) or Ctrl-C (KeyboardInterrupt) in this thread."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- a worker ---------------------------------------------------------------------------


def _stop_when_parent_exits(fd: int, parent_pid: int) -> None:
    wait_for_parent_exit(fd, parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """One request process: waitress on its own socket until SIGTERM or orphaned."""
    parser = argparse.ArgumentParser(prog="python -m receiver.runtime.supervisor")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    config = Config.from_env()
    logs.configure(
        args.log_level,
        config.log_format,
        text_format=f"%(asctime)s %(levelname)s %(name)s[w{args.index}] %(message)s",
    )
    quiet_waitress_queue()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C stops the supervisor

    import waitress

    from .wiring import open_runtime

    status_path = config.projector_status
    runtime = open_runtime(
        config,
        catch_up=None,
        projector=ProjectorStatus(status_path) if status_path else None,
        forwarder=ProjectorStatus(config.forwarder_status) if config.forwarder_status else None,
    )
    try:
        sock = bind(args.host, args.port, listening=True)
        threading.Thread(
            target=_stop_when_parent_exits,
            args=(args.parent_fd, args.parent_pid),
            name="ikledger-parent-watch",
            daemon=True,
        ).start()
        waitress.serve(runtime.app, sockets=[sock], **waitress_options(config, args.threads))
    except SystemExit:
        pass
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
