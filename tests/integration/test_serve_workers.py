"""`ikledger serve --workers N`: several request processes on one port and one log.

Real `serve` processes on free loopback ports, real connections and signals. Which
worker holds a connection is read from /proc (the worker whose descriptors include
the server side of that TCP connection), so no answer needs to name its process.
Every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.harness import Feeder, assert_log_holds, make_events
from tests.support import (
    BOUND,
    IKLEDGER,
    SECRET,
    alive,
    event_body,
    serve,
    signed,
    wait_for,
)


def children(pid: int) -> list[int]:
    """Every child of `pid`, whichever of its threads started it."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that just ended
            continue
    return sorted(found)


def workers_of(served) -> set[int]:
    """The request processes of a `serve`: its children but the catch-up and forwarding
    children.

    Empty when the question met a worker being killed (its connections are reset).
    """
    try:
        health = get_json(served.port, "/healthz")
    except ConnectionError:
        return set()
    others = {health["projector"]["pid"], health["forwarder"]["pid"]}
    return {pid for pid in children(served.process.pid) if pid not in others}


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of 127.0.0.1:client_port -> 127.0.0.1:server_port."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None


def worker_holding(served, conn: http.client.HTTPConnection) -> int | None:
    """The worker process whose descriptors include the server side of `conn`."""
    inode = _socket_inode(served.port, conn.sock.getsockname()[1])
    if inode is None:
        return None
    for pid in workers_of(served):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue
    return None


def connection_per_worker(served, count: int) -> dict[int, http.client.HTTPConnection]:
    """One open keep-alive connection held by each of `count` different workers."""
    held: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    deadline = time.monotonic() + BOUND
    while len(held) < count:
        assert time.monotonic() < deadline, f"connections reached only workers {sorted(held)}"
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/healthz")  # answered: accepted by some worker
        conn.getresponse().read()
        pid = worker_holding(served, conn)
        if pid is not None and pid not in held:
            held[pid] = conn
        else:
            spare.append(conn)  # kept open, so the next connection is a new one
    for conn in spare:
        conn.close()
    return held


def post(conn: http.client.HTTPConnection, body: bytes, **sign) -> tuple[int, dict]:
    conn.request("POST", "/webhook", body=body, headers=signed(body, **sign))
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())


@pytest.fixture
def two_workers(tmp_path):
    with serve(tmp_path / "log.db", args=("--workers", "2")) as served:
        wait_for(lambda: len(workers_of(served)) == 2, "two request workers")
        yield served


def test_both_workers_acknowledge_and_positions_stay_gap_free(two_workers):
    served = two_workers
    connections = connection_per_worker(served, 2)
    events = {pid: make_events(60, seed=n, prefix=f"w{n}") for n, pid in enumerate(connections)}
    answers: dict[int, list] = {pid: [] for pid in connections}

    def send(pid: int) -> None:  # both workers at once, each on its own connection
        for event_id, body in events[pid]:
            answers[pid].append((event_id, *post(connections[pid], body)))

    threads = [threading.Thread(target=send, args=(pid,)) for pid in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    acked = {}
    for pid, rows in answers.items():
        assert len(rows) == 60, f"worker {pid} answered {len(rows)} of 60"
        for event_id, status, answer in rows:
            assert status == 200 and answer["id"] == event_id and not answer["duplicate"], answer
            acked[event_id] = answer["position"]
    bodies = {event_id: body for rows in events.values() for event_id, body in rows}
    assert sorted(acked.values()) == list(range(1, 121))
    assert assert_log_holds(served.db, bodies, acked) == 120  # gap-free, one chain, verified


def test_a_duplicate_is_recognised_by_another_worker(two_workers):
    first, second = connection_per_worker(two_workers, 2).values()
    body = event_body("twice")
    status, stored = post(first, body)
    assert status == 200 and not stored["duplicate"]
    status, again = post(second, body)
    assert status == 200 and again["duplicate"] and again["position"] == stored["position"]
    conflicting = event_body("twice", type_="video.transformation.ready")
    status, conflict = post(second, conflicting)
    assert status == 200 and conflict["position"] == stored["position"]
    # The journal saw one stored delivery and two redeliveries, whoever took them.
    metrics = first_metrics(two_workers.port)
    assert metrics["stored"] == 1 and metrics["duplicate"] == 1 and metrics["conflict"] == 1


def first_metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    found = re.findall(r'^ikledger_deliveries_total\{outcome="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {outcome: float(value) for outcome, value in found}


def test_metrics_count_the_deliveries_of_every_worker(two_workers):
    connections = connection_per_worker(two_workers, 2)
    for n, conn in enumerate(connections.values()):
        for k in range(3 + n):
            assert post(conn, event_body(f"m{n}-{k}"))[0] == 200
    # 3 through one worker, 4 through the other: each scrape sums both.
    for conn in connections.values():
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        assert 'ikledger_deliveries_total{outcome="stored"} 7.0' in text, text[-2000:]


def test_a_ui_session_and_a_verify_result_from_one_worker_are_seen_by_another(two_workers):
    first, second = connection_per_worker(two_workers, 2).values()
    first.request("GET", "/ui/log")
    page = first.getresponse()
    text = page.read().decode()
    cookie = page.getheader("set-cookie").split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', text).group(1)
    origin = f"http://127.0.0.1:{two_workers.port}"
    second.request(
        "POST",
        "/ui/log/verify",
        body=f"csrf={csrf}",
        headers={
            "Cookie": cookie,
            "Origin": origin,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    answer = second.getresponse()
    answer.read()
    assert answer.status == 303, answer.status  # not 403: the CSRF token checked out

    # The verification runs in the background of the second worker; the first
    # worker's page shows it once it has finished.
    def shown() -> str | None:
        first.request("GET", "/ui/log", headers={"Cookie": cookie})
        page = first.getresponse()
        text = page.read().decode()
        assert page.status == 200, page.status
        return text if 'id="verify-result"' in text else None

    text = wait_for(shown, "the verify result on the other worker's page")
    assert "✓ ok" in text, text[-1500:]


def test_a_killed_worker_is_restarted_and_nothing_acknowledged_is_lost(tmp_path):
    db = tmp_path / "log.db"
    with serve(db, args=("--workers", "2")) as served:
        before = wait_for(lambda: len(w := workers_of(served)) == 2 and w, "two request workers")
        events = make_events(600, seed=7, prefix="k")
        base = served.base
        feeder = Feeder(events, lambda: [base], threads=8)
        feeder.start()
        wait_for(lambda: len(feeder.tally.acked) >= 100, "the first acknowledgements")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        after = wait_for(
            lambda: len(w := workers_of(served)) == 2 and victim not in w and w,
            "the restart of the killed worker",
        )
        feeder.stop()
        feeder.drain(timeout=60)
        assert not feeder.tally.bad, feeder.tally.bad[:5]
        assert set(feeder.tally.statuses) <= {200, 503, "transport"}, feeder.tally.statuses
        assert after - before  # a new process took the killed one's place
        assert assert_log_holds(db, feeder.bodies, feeder.tally.acked) == len(events)
        assert "request worker 0" in served.log_text() or "request worker 1" in served.log_text()


def test_sigterm_stops_every_process_and_sigkill_of_serve_ends_the_workers(tmp_path):
    with serve(tmp_path / "a.db", args=("--workers", "2")) as served:
        processes = wait_for(
            lambda: len(c := children(served.process.pid)) == 4 and c, "4 children"
        )
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(BOUND) == 0
        wait_for(lambda: not any(alive(pid) for pid in processes), "the children's exit")
    with serve(tmp_path / "b.db", args=("--workers", "2")) as served:
        processes = wait_for(
            lambda: len(c := children(served.process.pid)) == 4 and c, "4 children"
        )
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(BOUND)
        wait_for(lambda: not any(alive(pid) for pid in processes), "the children's exit")


def test_one_worker_is_the_single_process_server(tmp_path):
    with serve(tmp_path / "log.db", args=("--workers", "1")) as served:
        health = get_json(served.port, "/healthz")
        others = {health["projector"]["pid"], health["forwarder"]["pid"]}
        assert set(children(served.process.pid)) == others  # no request worker
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        assert post(conn, event_body("single"))[0] == 200
        conn.close()


assert SECRET  # the server signs with the suite's secret (tests.support)


def test_an_address_in_use_is_refused_not_shared(tmp_path):
    with serve(tmp_path / "a.db", args=("--workers", "2")) as served:
        second = subprocess.run(
            [IKLEDGER, "serve", "--port", str(served.port), "--workers", "2"],
            env={
                **os.environ,
                "IMAGEKIT_WEBHOOK_SECRET": SECRET,
                "IKLEDGER_DB": str(tmp_path / "b.db"),
            },
            capture_output=True,
            timeout=BOUND,
            check=False,
        )
        assert second.returncode != 0 and b"cannot listen" in second.stderr
