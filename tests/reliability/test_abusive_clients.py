"""Promise 5: slow, idle and unsigned clients cannot starve signed deliveries."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from store.sqlite_engine import sqlite3
from tests.support import event_body, signed

from .harness import Server

pytestmark = pytest.mark.slow

IDLE_CONNECTIONS = 300  # over waitress's default connection_limit of 100
SLOW_CLIENTS = 4
FLOODERS = 4
FLOOD_EACH = 150  # unsigned deliveries per flooder: 600 in all, far over the journal's cap
REJECTED_KEEP = 100
BOUND = 60.0  # seconds the attack may take before the test calls it a hang
# Latency under this attack is a benchmark's business (bench/), not a pass/fail here:
# the test asks that every signed delivery is answered 200 while the attack lasts,
# within the sender's own timeout.
SENDER_TIMEOUT_S = 10.0


def _address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname, parts.port


def _slow_body(address, attack: threading.Event, answers: list) -> None:
    """A valid signed delivery whose body arrives one byte at a time while the attack lasts."""
    body = event_body()
    head = "".join(f"{k}: {v}\r\n" for k, v in signed(body).items())
    request = f"POST /webhook HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request.encode())
        sent = 0
        while sent < len(body) - 1 and not attack.wait(0.05):
            sock.sendall(body[sent : sent + 1])
            sent += 1
        sock.sendall(body[sent:])
        answers.append(sock.recv(4096).split(b" ", 2)[1])


def _flood(base: str, statuses: list) -> None:
    """FLOOD_EACH unsigned deliveries; their statuses go to `statuses` for the test to check."""
    with httpx.Client(timeout=10) as http:
        for _ in range(FLOOD_EACH):
            response = http.post(
                f"{base}/webhook", content=b"{}", headers={"content-type": "application/json"}
            )
            statuses.append(response.status_code)


def test_signed_deliveries_are_answered_under_abuse(tmp_path):
    db = tmp_path / "log.db"
    server = Server(db, env={"IKLEDGER_REJECTED_KEEP": str(REJECTED_KEEP)})
    server.start()
    address = _address(server.base)
    idle: list[socket.socket] = []
    attack_over = threading.Event()
    slow_answers: list[bytes] = []
    slow = [
        threading.Thread(target=_slow_body, args=(address, attack_over, slow_answers))
        for _ in range(SLOW_CLIENTS)
    ]
    flood_statuses: list[int] = []
    flooders = [
        threading.Thread(target=_flood, args=(server.base, flood_statuses)) for _ in range(FLOODERS)
    ]
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(address, timeout=5))
        for thread in slow + flooders:
            thread.start()

        # Signed deliveries for as long as the flood lasts (ten at least).
        statuses: list = []
        deadline = time.monotonic() + BOUND
        while any(t.is_alive() for t in flooders) or len(statuses) < 10:
            assert time.monotonic() < deadline, "the flood never ended"
            body = event_body()
            try:  # a fresh connection each time, as a webhook sender opens one
                status = httpx.post(
                    f"{server.base}/webhook",
                    content=body,
                    headers=signed(body),
                    timeout=SENDER_TIMEOUT_S,
                ).status_code
            except httpx.TransportError as exc:
                status = repr(exc)
            statuses.append(status)
        attack_over.set()
        for thread in slow + flooders:
            thread.join(BOUND)
            assert not thread.is_alive(), "an attacker hung"

        assert set(statuses) == {200}, statuses[:5]
        assert flood_statuses == [401] * (FLOODERS * FLOOD_EACH)
        assert slow_answers == [b"200"] * SLOW_CLIENTS
        assert server.health().status_code == 200
    finally:
        attack_over.set()
        for sock in idle:
            sock.close()
        server.stop()

    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT count(*) FROM deliveries WHERE outcome = 'rejected'").fetchone()
    stored = conn.execute("SELECT count(*) FROM events").fetchone()
    conn.close()
    assert kept == (REJECTED_KEEP,), "the rejected journal is not capped"
    assert stored == (len(statuses) + SLOW_CLIENTS,)
