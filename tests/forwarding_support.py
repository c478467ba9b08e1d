"""A real HTTP endpoint on loopback that records what forwarding sends, and can be told to fail.

`Recorder` runs a threaded `http.server` on a free 127.0.0.1 port. `behave` picks the
answer of each request: `("status", code, headers)`, `"hang"` (answer nothing until the
client gives up), `"close"` (promise a body, send part of it, close) or `"redirect"`.
Every request is recorded (headers lower-cased, body) whatever the answer.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import forwarding
from store import NewEvent
from tests.support import ROOT, event_body, free_port

Behaviour = Callable[[int, dict, bytes], object]


def ok(index: int, headers: dict, body: bytes) -> object:
    return ("status", 200, {})


@dataclass
class Received:
    headers: dict
    body: bytes
    answered: object
    at: float = field(default_factory=time.monotonic)


class Recorder:
    def __init__(self, port: int | None = None, behave: Behaviour = ok):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.behave = behave
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self.release = threading.Event()  # ends "hang" answers

    def start(self) -> Recorder:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with recorder.lock:
                    index = len(recorder.received)
                    action = recorder.behave(index, headers, body)
                    recorder.received.append(Received(headers, body, action))
                if action == "hang":
                    recorder.release.wait(10)
                    self.close_connection = True
                    return
                if action == "close":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if action == "redirect":
                    action = ("status", 302, {"Location": recorder.url + "/elsewhere"})
                _, code, extra = action
                answer = f"answer {code}".encode()
                self.send_response(code)
                for name, value in {**extra, "Content-Length": str(len(answer))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None
            self.release = threading.Event()

    def ids(self, *, status: int | None = 200) -> list[str]:
        """The `webhook-id`s received (answered with `status`; None: every request)."""
        with self.lock:
            return [
                r.headers["webhook-id"]
                for r in self.received
                if status is None or (isinstance(r.answered, tuple) and r.answered[1] == status)
            ]


# -- events and a forwarder in a thread ---------------------------------------------


def video_event(event_id: str, asset: str) -> NewEvent:
    """An accepted video event of `https://ik.imagekit.io/demo/<asset>.mp4`."""
    body = json.loads(event_body(event_id))
    body["data"]["asset"]["url"] = f"https://ik.imagekit.io/demo/{asset}.mp4"
    return NewEvent(
        event_id,
        "video.transformation.accepted",
        "2024-01-01T00:00:00.000Z",
        json.dumps(body).encode(),
        "standard-webhooks",
    )


@contextmanager
def forwarding_running(store, settings: forwarding.Settings) -> Iterator[None]:
    """The supervisor (`forwarding.run`) in a thread while the block runs."""
    stop = threading.Event()
    thread = threading.Thread(
        target=forwarding.run,
        args=(store,),
        kwargs={"stop": stop, "settings": settings, "poll": 0.05},
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "the supervisor did not stop"


# -- a forwarder in its own process ----------------------------------------------------

FORWARDER = """
import signal, sys, threading
import forwarding
from store import open_store

location, secret, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = open_store(location, timeout=5.0)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
settings = forwarding.Settings(
    imagekit_secrets=(secret,), lease_ttl=ttl, poll=0.01, reload=0.1, drain=2
)
print("ready", flush=True)
forwarding.run(store, stop, settings=settings, poll=0.05)
store.close()
"""


def start_forwarder(location: str, secret: str, *, ttl: float = 1.0) -> subprocess.Popen:
    """`forwarding.run` over `location` in a child process (stop it by its pid)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", FORWARDER, location, secret, str(ttl)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_forwarder(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    process.wait(20)
