"""`ikledger serve` forwards in its own child process: webhooks posted to it reach a
destination in order per asset, a SIGKILLed `serve` loses none after its restart, and
the child's attempt counts reach /metrics (one process, and with request workers)."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.forwarding_support import Recorder
from tests.support import event_body, run_cli, serve, signed, wait_for

ASSETS = [f"https://ik.imagekit.io/demo/a{n}.mp4" for n in range(4)]
FAST = {"IKLEDGER_FORWARD_LEASE_TTL": "1"}


def slowly(index, headers, body):
    time.sleep(0.02)  # the flow is still going when serve is killed
    return ("status", 200, {})


def post(base: str, bodies: list[bytes]) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        for body in bodies:
            answer = http.post("/webhook", content=body, headers=signed(body))
            assert answer.status_code == 200, answer.text


def attempts_ok(base: str) -> float:
    """`ikledger_forwarding_attempts_total{destination="app",outcome="2xx"}`, 0 if absent."""
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name == "ikledger_forwarding_attempts_total" and sample.labels == {
                "destination": "app",
                "outcome": "2xx",
            }:
                return sample.value
    return 0


def by_asset(received, order: dict[str, str]) -> dict[str, list[str]]:
    """Each asset's event ids in the order they first reached the recorder."""
    seen: dict[str, list[str]] = {}
    for event_id in received:
        ids = seen.setdefault(order[event_id], [])
        if event_id not in ids:
            ids.append(event_id)
    return seen


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_forwards_in_order_per_asset_across_a_sigkill(db_path, workers):
    recorder = Recorder(behave=slowly).start()
    try:
        added = run_cli("destinations", "add", "app", recorder.url, "--from", "start", db=db_path)
        assert added.returncode == 0, added.stderr
        bodies, asset_of = [], {}
        for n in range(60):
            event_id = f"evt-{n:03d}"
            asset = ASSETS[n % len(ASSETS)]
            bodies.append(event_body(event_id, data={"asset": {"url": asset}}))
            asset_of[event_id] = asset
        with serve(db_path, env=FAST, args=("--workers", workers)) as served:
            post(served.base, bodies[:40])
            wait_for(lambda: len(recorder.ids()) >= 5, "the first deliveries")
            served.process.send_signal(signal.SIGKILL)
            served.process.wait(10)
        with serve(db_path, env=FAST, args=("--workers", workers)) as served:
            post(served.base, bodies[40:])
            wait_for(lambda: set(recorder.ids()) == set(asset_of), "every event delivered")
            # The forwarding child's counts (since its restart) reach /metrics.
            wait_for(lambda: attempts_ok(served.base) >= 20, "the attempts in /metrics")
    finally:
        recorder.stop()
    expected = {asset: [i for i in asset_of if asset_of[i] == asset] for asset in ASSETS}
    assert by_asset(recorder.ids(), asset_of) == expected
