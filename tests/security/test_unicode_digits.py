"""Digits other than 0-9: `str.isdigit()` is true of '²' and '٣', and `int('²')` fails.

Every place that reads a number from outside (a query parameter, a header of the app a
destination forwards to, a checkpoint's text, an as-of) takes ASCII digits only, and
answers anything else with its documented error, never a crash (schemathesis found
`GET /ui?limit=²` answering 500).
"""

from __future__ import annotations

import httpx
import pytest

from forwarding.schedule import parse_retry_after
from projections.timespec import position_or_instant
from receiver.ui.auth import COOKIE
from store.tlog.checkpoint import CheckpointError, parse_checkpoint
from tests.security.helpers import signed_in
from tests.support import payload, serve, signed

TOKEN = "digits-read-token"
NOT_ASCII = ["²", "٣", "1²", "①"]  # superscript, Arabic-Indic, mixed, circled


@pytest.mark.parametrize("text", NOT_ASCII)
def test_a_retry_after_of_other_digits_is_unusable(text):
    assert parse_retry_after(text, 0.0) is None


@pytest.mark.parametrize("text", NOT_ASCII)
def test_a_checkpoint_size_of_other_digits_is_refused(text):
    note = f"example.com/log\n{text}\n{'A' * 43}=\n\n"
    with pytest.raises(CheckpointError):
        parse_checkpoint(note)


@pytest.mark.parametrize("text", NOT_ASCII)
def test_an_as_of_of_other_digits_is_not_a_position(text):
    with pytest.raises(ValueError):  # the documented refusal of a time it cannot read
        position_or_instant(text)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("digits") / "ikledger.db"
    with serve(db, env={"IKLEDGER_READ_TOKEN": TOKEN}) as server:
        body = payload("video.transformation.accepted")
        assert httpx.post(f"{server.base}/webhook", content=body, headers=signed(body)).is_success
        server.session = signed_in(server.base, TOKEN)
        yield server
    assert "Traceback" not in server.log_text(), server.log_text()


@pytest.mark.parametrize(
    "path, params",
    [
        ("/ui", {"limit": "²"}),
        ("/ui/events", {"limit": "٣"}),
        ("/ui/events", {"cursor": "²"}),
        ("/ui/asset", {"url": "https://ik.imagekit.io/demo/a.mp4", "as_of": "²"}),
        ("/timeline", {"url": "https://ik.imagekit.io/demo/a.mp4", "as_of": "²"}),
    ],
)
def test_a_parameter_of_other_digits_gets_a_400(served, path, params):
    answer = httpx.get(
        f"{served.base}{path}",
        params=params,
        headers={"Authorization": f"Bearer {TOKEN}"},
        cookies={COOKIE: served.session},
        follow_redirects=False,
    )
    assert answer.status_code == 400, (path, params, answer.status_code, answer.text[:300])
