"""Real processes, real files, real HTTP: the tools of the reliability tests.

- `Server`: one `ikledger serve` process that can be started, SIGKILLed and restarted.
- `Feeder`: threads that deliver signed events as ImageKit does, retrying what was not
  acknowledged, and remember exactly which deliveries got a 2xx.
- `log_rows`, `assert_log_holds`, `served_tables`, `rebuilt_tables`: what is on disk.

Everything is bounded in count and in time, seeded, and on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from store.sqlite_engine import sqlite3
from tests.support import IKLEDGER, SECRET, free_port, run_cli, signed
from tests.support import served_tables as table_rows  # (generation, rows), one transaction

VIDEO = (
    "video.transformation.accepted",
    "video.transformation.ready",
    "video.transformation.error",
)


def make_events(count: int, *, seed: int, prefix: str = "evt", assets: int = 40) -> list:
    """`count` (id, body) pairs: video events over a few assets, some other types."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        event_id = f"{prefix}-{index:06d}"
        kind = rng.random()
        asset = f"https://ik.imagekit.io/demo/{prefix}-{rng.randrange(assets)}.mp4"
        document = {
            "type": VIDEO[index % 3] if kind < 0.85 else "file.created",
            "id": event_id,
            "created_at": f"2024-03-{1 + rng.randrange(28):02d}T{rng.randrange(24):02d}:"
            f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z",
            "request": {"x_request_id": f"req-{rng.randrange(count // 2 + 1)}", "url": asset},
            "data": {
                "asset": {"url": asset},
                "transformation": {"type": "video-transformation", "options": {"q": index % 7}},
            },
        }
        if document["type"].endswith("error"):
            document["data"]["transformation"]["error"] = {"reason": "encoding_failed"}
        events.append((event_id, orjson.dumps(document)))
    return events


class Server:
    """One `ikledger serve` process on a free loopback port; restartable."""

    def __init__(
        self,
        db: Path,
        *,
        env: dict | None = None,
        preexec_fn: Callable[[], None] | None = None,
        threads: int = 8,
    ):
        self.db = db
        self.env = {**os.environ, "IMAGEKIT_WEBHOOK_SECRET": SECRET, **(env or {})}
        self.preexec_fn = preexec_fn
        self.threads = threads
        self.process: subprocess.Popen | None = None
        self.base = ""
        self.output = b""

    def start(self, timeout: float = 20.0) -> str:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [IKLEDGER, "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--db", str(self.db), "--threads", str(self.threads), "--log-level", "error"]
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=self.preexec_fn,  # noqa: PLW1509 -- only to drop privileges
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code in (200, 503):
                    return self.base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start in time")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.output += self.process.stderr.read()
        self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output += self.process.stderr.read()
        self.process.stderr.close()
        self.process = None

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.base}/healthz", timeout=5)

    def wait_projections_current(self, timeout: float = 30.0) -> dict:
        """Wait until healthz reports every projection at the log's head; returns healthz."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.health().json()
            rows = body.get("projections") or []
            if rows and all(
                r["lag"] == 0 and not r.get("error") and r["checkpoint"] == body["position"]
                for r in rows
            ):
                return body
            assert time.monotonic() < deadline, f"projections did not catch up: {body}"
            time.sleep(0.05)


@dataclass
class Tally:
    """What the senders saw."""

    acked: dict[str, int] = field(default_factory=dict)  # id → position answered
    duplicates: set[str] = field(default_factory=set)  # ids acknowledged as duplicate
    statuses: Counter = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # responses that break a promise
    attempts: int = 0
    # Transport failures of requests the server had accepted (read/write errors, a
    # connection closed without an answer), as opposed to connections refused.
    cut: int = 0
    in_flight: int = 0  # requests sent and not yet answered or failed


class Feeder:
    """Delivers events from several threads to one or more servers, as ImageKit does.

    An event not acknowledged with a 2xx (connection refused or reset, timeout, 503)
    goes back to the pending list and is delivered again, byte for byte, later. Any
    other answer is recorded in `tally.bad`. A 2xx answer is checked: same id, a
    position, and the same position on every acknowledgement of that id.
    """

    def __init__(self, events: list, bases: Callable[[], list[str]], *, threads: int = 16):
        self.bodies = dict(events)
        self.pending = [event_id for event_id, _ in events]
        self.pending.reverse()  # pop() from the end delivers in order
        self.bases = bases
        self.threads = threads
        self.tally = Tally()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self.stop_event.clear()
        self._workers = [
            threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self.stop_event.set()
        for worker in self._workers:
            worker.join(timeout=30)
            assert not worker.is_alive(), "a feeder thread is stuck"
        self._workers = []

    def run_for(self, seconds: float) -> None:
        self.start()
        self.stop_event.wait(seconds)
        self.stop()

    def drain(self, timeout: float = 60.0) -> None:
        """Deliver until every event has been acknowledged (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        self.start()
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.tally.acked) == len(self.bodies):
                    break
            time.sleep(0.05)
        self.stop()
        assert not self.pending, f"{len(self.pending)} events never acknowledged"

    def _work(self, number: int) -> None:
        with httpx.Client(timeout=10) as http:
            turn = number
            while not self.stop_event.is_set():
                with self.lock:
                    if not self.pending:
                        event_id = None
                    else:
                        event_id = self.pending.pop()
                        self.tally.attempts += 1
                if event_id is None:
                    if self.stop_event.wait(0.02):
                        return
                    continue
                bases = self.bases()
                turn += 1
                self._deliver(http, bases[turn % len(bases)], event_id)

    def _deliver(self, http: httpx.Client, base: str, event_id: str) -> None:
        body = self.bodies[event_id]
        with self.lock:
            self.tally.in_flight += 1
        try:
            response = http.post(f"{base}/webhook", content=body, headers=signed(body))
        except httpx.TransportError as exc:
            with self.lock:
                self.tally.in_flight -= 1
                self.tally.statuses["transport"] += 1
                if not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    self.tally.cut += 1
                self.pending.insert(0, event_id)
            time.sleep(0.05)
            return
        status = response.status_code
        with self.lock:
            self.tally.in_flight -= 1
            self.tally.statuses[status] += 1
            if 200 <= status < 300:
                self._record_ack(event_id, response)
            else:
                if status != 503 or response.headers.get("retry-after") is None:
                    self.tally.bad.append(f"{event_id}: {status} {response.text[:200]}")
                self.pending.insert(0, event_id)

    def _record_ack(self, event_id: str, response: httpx.Response) -> None:
        answer = response.json()
        position = answer.get("position")
        if answer.get("id") != event_id or not isinstance(position, int) or position < 1:
            self.tally.bad.append(f"{event_id}: 2xx with {answer}")
            return
        if answer.get("duplicate"):
            self.tally.duplicates.add(event_id)
        earlier = self.tally.acked.setdefault(event_id, position)
        if earlier != position:
            self.tally.bad.append(f"{event_id}: acknowledged at {earlier}, then at {position}")


def log_rows(db: Path) -> list[tuple[int, str, bytes]]:
    """(position, id, body) of every event in the log, in position order."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [
            (position, event_id, bytes(body))
            for position, event_id, body in conn.execute(
                "SELECT position, id, body FROM events ORDER BY position"
            )
        ]
    finally:
        conn.close()


def assert_log_holds(db: Path, bodies: dict[str, bytes], acked: dict[str, int]) -> int:
    """Every acknowledged event is in the log at its position, byte for byte; positions
    are 1..N without a gap and ids are unique; `ikledger verify` says ok. Returns N."""
    rows = log_rows(db)
    positions = [position for position, _, _ in rows]
    assert positions == list(range(1, len(rows) + 1)), "positions are not gap-free"
    by_id = {event_id: (position, body) for position, event_id, body in rows}
    assert len(by_id) == len(rows), "an event id is stored twice"
    missing = sorted(set(acked) - set(by_id))
    assert not missing, f"{len(missing)} acknowledged events are not in the log: {missing[:5]}"
    for event_id, position in acked.items():
        assert by_id[event_id] == (position, bodies[event_id]), f"{event_id} altered or moved"
    for event_id, (_, body) in by_id.items():
        assert body == bodies[event_id], f"{event_id} stored with other bytes"
    verified = run_cli("verify", db=db)
    assert verified.returncode == 0, verified.stderr.decode()
    assert verified.stdout.decode().startswith(f"ok, {len(rows)} events")
    return len(rows)


def projections_path(db: Path) -> Path:
    return db.with_name(db.stem + ".projections" + db.suffix)


def rebuilt_tables(db: Path, scratch: Path) -> dict[str, list]:
    """What a full rebuild of the log gives, built into a separate projections file."""
    scratch.unlink(missing_ok=True)
    done = run_cli("rebuild", db=db, env={"IKLEDGER_PROJECTIONS_DB": str(scratch)})
    assert done.returncode == 0, done.stderr.decode()
    return table_rows(scratch)[1]
