"""The README's quick start, as a new user runs it: serve, trigger, timeline, verify."""

from __future__ import annotations

import json
import time

import httpx

from tests.support import PAYLOADS, SECRET, live_server, run_cli

SAMPLE = "http://ik.imagekit.io/demo/sample-video.mp4"
ENV = {"IMAGEKIT_WEBHOOK_SECRET": SECRET}


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_documented_examples_give_the_promised_timeline(db_path):
    with live_server(db_path) as base:
        url = f"{base}/webhook"
        for index, name in enumerate(
            [
                "video.transformation.accepted",
                "video.transformation.ready",
                "video.transformation.error",
            ]
        ):
            scheme = ["standard", "legacy"][index % 2]
            sent = run_cli(
                "trigger", str(PAYLOADS / f"{name}.json"), "--url", url, "--scheme", scheme, env=ENV
            )
            assert sent.returncode == 0, sent.stderr
            assert json.loads(sent.stdout.decode().split(" ", 1)[1])["duplicate"] is False
        # New events show in the served timeline within a second, with no rebuild.
        served = wait_for(
            lambda: (
                len(
                    httpx.get(f"{base}/timeline", params={"asset": SAMPLE})
                    .json()
                    .get("transformations", [])
                )
                == 2
            ),
            timeout=2.0,
        )
        assert served
        shown = run_cli("timeline", SAMPLE.replace("http:", "https:"), db=db_path)
    text = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr
    ready_row = next(line for line in text.splitlines() if line.startswith("ready"))
    assert "13.2 s" in ready_row and "10.2 s" in ready_row
    assert "download_failed" in text
    assert run_cli("verify", db=db_path).stdout.startswith(b"ok, 3 events")


def test_trigger_templates_for_every_known_type_are_accepted(db_path):
    types = [
        "video.transformation.accepted",
        "video.transformation.ready",
        "video.transformation.error",
        "upload.pre-transform.success",
        "upload.pre-transform.error",
        "upload.post-transform.success",
        "upload.post-transform.error",
        "file.created",
        "file.updated",
        "file.deleted",
        "file-version.created",
        "file-version.deleted",
        "folder.created",
        "folder.updated",
        "folder.deleted",
    ]
    with live_server(db_path) as base:
        for event_type in types:
            sent = run_cli(
                "trigger",
                event_type,
                "--url",
                f"{base}/webhook",
                "--request-id",
                "r1",
                "--asset",
                "https://ik.imagekit.io/acme/clip.mp4",
                env=ENV,
            )
            assert sent.returncode == 0, (event_type, sent.stdout, sent.stderr)
    listed = run_cli("events", "--json", db=db_path)
    assert [json.loads(line)["type"] for line in listed.stdout.splitlines()] == types
    clip = run_cli("timeline", "https://ik.imagekit.io/acme/clip.mp4", "--json", db=db_path)
    (transformation,) = json.loads(clip.stdout)["transformations"]
    assert transformation["request_id"] == "r1" and len(transformation["events"]) == 3


def test_trigger_reports_unknown_type_and_unreachable_receiver():
    unknown = run_cli("trigger", "video.teleported", env=ENV)
    assert unknown.returncode == 1 and b"no template" in unknown.stderr
    down = run_cli("trigger", "file.created", "--url", "http://127.0.0.1:9/webhook", env=ENV)
    assert down.returncode == 1 and b"cannot reach" in down.stderr
