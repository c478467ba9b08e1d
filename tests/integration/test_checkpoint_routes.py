"""Checkpoints kept by serve, GET /checkpoint and GET /events/{id}/proof."""

from __future__ import annotations

import base64
import signal

import falcon.testing
import httpx
import pytest

import projections
from receiver import Config, create_app
from receiver.checkpoints import Checkpointer, checkpoint_size, keep_if_grown
from store.tlog import generate_key, parse_signer
from store.tlog.proofs import check_proof
from tests.support import SECRET, event_body, new_event, run_cli, serve, signed, wait_for

ORIGIN = "ikledger.test/routes"


@pytest.fixture(scope="module")
def keys():
    private, verifier = generate_key(ORIGIN)
    return private, parse_signer(private), verifier


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


def client(store, views, **config) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(Config(secrets=(SECRET,), **config), store, views))


def test_a_checkpoint_is_kept_only_when_the_log_has_grown(store, keys):
    assert keep_if_grown(store, keys[1]) is not None  # the first, of the empty log
    assert keep_if_grown(store, keys[1]) is None
    store.append_many([new_event(f"e{i}") for i in range(3)])
    kept = keep_if_grown(store, keys[1])
    assert kept == store.latest_checkpoint() and checkpoint_size(kept) == 3
    assert keep_if_grown(store, keys[1]) is None


def test_the_checkpointer_keeps_a_last_checkpoint_when_stopped(store, keys):
    checkpointer = Checkpointer(store, keys[1], every=3600)  # only the stop's checkpoint
    checkpointer.start()
    store.append_many([new_event(f"e{i}") for i in range(5)])
    checkpointer.stop()
    assert checkpoint_size(store.latest_checkpoint()) == 5


def test_checkpoint_route_is_public_and_serves_the_latest(store, views, keys):
    http = client(store, views, read_token="t0k")
    answer = http.simulate_get("/checkpoint")
    assert answer.status_code == 404 and answer.json["code"] == "no_checkpoint"
    store.append_many([new_event("a"), new_event("b")])
    note = keep_if_grown(store, keys[1])
    answer = http.simulate_get("/checkpoint")
    assert answer.status_code == 200 and answer.content == note


def test_proof_route_needs_the_token_and_answers_a_proof_that_checks(store, views, keys):
    http = client(store, views, read_token="t0k")
    auth = {"Authorization": "Bearer t0k"}
    store.append_many([new_event(f"e{i}") for i in range(9)])
    keep_if_grown(store, keys[1])
    store.append_many([new_event("late")])
    assert http.simulate_get("/events/e4/proof").status_code == 401
    proof = http.simulate_get("/events/e4/proof", headers=auth).json
    check_proof(proof, keys[2], body=store.get("e4").body)
    assert proof["tree_size"] == 9 and proof["leaf_index"] == 4
    late = http.simulate_get("/events/late/proof", headers=auth)
    assert late.status_code == 409 and late.json["code"] == "not_in_checkpoint"
    assert late.headers["retry-after"] == "60"
    missing = http.simulate_get("/events/nope/proof", headers=auth)
    assert missing.status_code == 404 and missing.json["code"] == "event_not_found"


def test_serve_signs_checkpoints_never_shows_the_key_and_survives_sigkill(tmp_path, keys):
    private, _, verifier = keys
    key_file = tmp_path / "signing.key"
    key_file.write_text(private + "\n")
    key_file.chmod(0o600)
    # PRIVATE+KEY+name+hash+base64: the base64 may itself hold a '+' (rsplit found '' then).
    seed = private.split("+", 4)[4]
    assert len(seed) > 40
    env = {
        "IKLEDGER_SIGNING_KEY": str(key_file),
        "IKLEDGER_CHECKPOINT_EVERY": "0.2",
        "IKLEDGER_RETAIN": "90d",  # wired in too: nothing that old to prune
    }
    db = tmp_path / "log.db"
    with serve(db, env=env, args=("--workers", "1", "--log-level", "debug")) as served:
        for i in range(3):
            body = event_body(f"live-{i}")
            answer = httpx.post(f"{served.base}/webhook", content=body, headers=signed(body))
            assert answer.status_code == 200, answer.text
        note = wait_for(
            lambda: (
                (r := httpx.get(f"{served.base}/checkpoint")).status_code == 200
                and checkpoint_size(r.content) == 3
                and r.content
            ),
            "a checkpoint of 3 events",
        )
        assert note.startswith(f"{ORIGIN}\n3\n".encode())
        proof = httpx.get(f"{served.base}/events/live-1/proof").json()
        check_proof(proof, verifier)
        shown = [
            httpx.get(f"{served.base}{path}").text
            for path in ("/metrics", "/healthz", "/", "/events/live-1", "/openapi.json")
        ]
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(20)
        shown.append(served.log_text())
    for text in shown:
        assert seed not in text and "PRIVATE+KEY" not in text
    verified = run_cli("verify", db=db)
    assert verified.returncode == 0, verified.stderr.decode()
    assert base64.b64decode(proof["root"]) and "ok, 3 events" in verified.stdout.decode()
