"""A real `ikledger serve` under waitress, driven over HTTP, then the CLI over its log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import (
    SECRET,
    event_body,
    free_port,
    live_server,
    payload,
    payload_names,
    run_cli,
    signed,
)


@pytest.fixture
def server(db_path):
    with live_server(db_path) as base:
        yield base


def test_documented_payloads_signed_both_ways_land_and_verify(server, db_path):
    ids = []
    with httpx.Client(base_url=server, timeout=10) as http:
        for index, name in enumerate(payload_names()):
            body = payload(name)
            scheme = "standard" if index % 2 else "legacy"
            response = http.post("/webhook", content=body, headers=signed(body, scheme=scheme))
            assert response.status_code == 200, response.text
            assert response.json()["duplicate"] is False
            ids.append(json.loads(body)["id"])
        again = http.post("/webhook", content=payload(name), headers=signed(payload(name)))
        assert again.json()["duplicate"] is True

    listed = run_cli("events", "--json", db=db_path)
    assert listed.returncode == 0
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ids

    verified = run_cli("verify", db=db_path)
    assert verified.returncode == 0
    assert verified.stdout.decode().startswith(f"ok, {len(ids)} events")

    shown = run_cli("show", ids[0], db=db_path)
    assert shown.stdout == payload(payload_names()[0])


def test_chunked_body_is_read_and_stored(server):
    body = event_body("chunked-1")

    def chunks():
        yield body[:10]
        yield body[10:]

    response = httpx.post(f"{server}/webhook", content=chunks(), headers=signed(body), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "chunked-1"


def test_errors_are_json_with_codes_over_the_wire(server):
    response = httpx.post(
        f"{server}/webhook", content=b"{}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == "signature_missing"
    metrics = httpx.get(f"{server}/metrics").text
    assert 'ikledger_rejections_total{code="signature_missing"} 1.0' in metrics


def test_get_app_under_another_wsgi_server_wires_what_serve_wires(db_path):
    """`waitress-serve --call receiver:get_app` builds through the same composition root as
    `ikledger serve`: deliveries land, and the catch-up thread keeps the timeline current."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = db_path.with_suffix(".wsgi.log")
    env = {**os.environ, "IMAGEKIT_WEBHOOK_SECRET": SECRET, "IKLEDGER_DB": str(db_path)}
    command = [str(Path(sys.executable).with_name("waitress-serve")), f"--listen=127.0.0.1:{port}"]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--call", "receiver:get_app"], env=env, stdout=sink, stderr=sink
        )
    try:
        _until(lambda: _answers(f"{base}/healthz"), process, output)
        body = payload("video.transformation.accepted")
        response = httpx.post(f"{base}/webhook", content=body, headers=signed(body), timeout=10)
        assert response.status_code == 200, response.text
        asset = json.loads(body)["data"]["asset"]["url"]
        timeline = f"{base}/timeline?asset={asset}"
        _until(lambda: _answers(timeline) == 200, process, output)
        assert db_path.with_name(db_path.stem + ".projections.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def _until(condition, process, output, attempts: int = 200) -> None:
    for _ in range(attempts):  # at most ~10 s
        assert process.poll() is None, output.read_text(errors="replace")
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met; server said: {output.read_text(errors='replace')}")
