"""Promise 5: slow, idle and unsigned clients cannot starve signed deliveries."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from store.sqlite_engine import sqlite3
from tests.support import event_body, signed

from .harness import Server

pytestmark = pytest.mark.slow

ATTACK_S = 6.0
IDLE_CONNECTIONS = 300  # over waitress's default connection_limit of 100
SLOW_CLIENTS = 4
FLOODERS = 4
REJECTED_KEEP = 500
# The benchmark's target is p99 ≤ 25 ms on a quiet machine; here the attack shares the
# same two cores, so the target is looser but still far from a client's timeout.
P95_TARGET_S = 0.5
MAX_TARGET_S = 2.0


def _address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname, parts.port


def _slow_body(address, until: float, answers: list) -> None:
    """A valid signed delivery whose body arrives one byte at a time, for a bounded time."""
    body = event_body()
    head = "".join(f"{k}: {v}\r\n" for k, v in signed(body).items())
    request = f"POST /webhook HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request.encode())
        sent = 0
        while sent < len(body) - 1 and time.monotonic() < until:
            sock.sendall(body[sent : sent + 1])
            sent += 1
            time.sleep(0.05)
        sock.sendall(body[sent:])
        answers.append(sock.recv(4096).split(b" ", 2)[1])


def _flood(base: str, until: float, counts: list) -> None:
    sent = 0
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < until:
            response = http.post(
                f"{base}/webhook", content=b"{}", headers={"content-type": "application/json"}
            )
            assert response.status_code == 401
            sent += 1
    counts.append(sent)


def test_signed_deliveries_keep_their_latency_under_abuse(tmp_path):
    db = tmp_path / "log.db"
    server = Server(db, env={"IKLEDGER_REJECTED_KEEP": str(REJECTED_KEEP)})
    server.start()
    address = _address(server.base)
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(address, timeout=5))
        until = time.monotonic() + ATTACK_S
        slow_answers, flood_counts = [], []
        attackers = [
            threading.Thread(target=_slow_body, args=(address, until, slow_answers))
            for _ in range(SLOW_CLIENTS)
        ] + [
            threading.Thread(target=_flood, args=(server.base, until, flood_counts))
            for _ in range(FLOODERS)
        ]
        for thread in attackers:
            thread.start()
        time.sleep(0.5)  # the attack is under way

        latencies, statuses = [], []
        while time.monotonic() < until - 0.5:
            body = event_body()
            started = time.monotonic()
            try:  # a fresh connection each time, as a webhook sender opens one
                status = httpx.post(
                    f"{server.base}/webhook", content=body, headers=signed(body), timeout=10
                ).status_code
            except httpx.TransportError as exc:
                status = repr(exc)
            latencies.append(time.monotonic() - started)
            statuses.append(status)
            time.sleep(0.05)
        for thread in attackers:
            thread.join(timeout=30)

        assert statuses and set(statuses) == {200}, statuses[:5]
        assert len(latencies) >= 10
        p95 = statistics.quantiles(latencies, n=20)[-1]
        assert p95 <= P95_TARGET_S, f"p95 {p95:.3f} s"
        assert max(latencies) <= MAX_TARGET_S, f"max {max(latencies):.3f} s"
        assert slow_answers == [b"200"] * SLOW_CLIENTS
        assert server.health().status_code == 200
    finally:
        for sock in idle:
            sock.close()
        server.stop()

    flooded = sum(flood_counts)
    assert flooded > 3 * REJECTED_KEEP
    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT count(*) FROM deliveries WHERE outcome = 'rejected'").fetchone()
    stored = conn.execute("SELECT count(*) FROM events").fetchone()
    conn.close()
    assert kept == (REJECTED_KEEP,), "the rejected journal is not capped"
    assert stored == (len(statuses) + SLOW_CLIENTS,)
