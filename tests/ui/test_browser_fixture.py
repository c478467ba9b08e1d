"""The browser fixture skips where Chromium or Playwright is missing, unless CI needs them."""

from __future__ import annotations

import pytest

from tests import browser


@pytest.mark.parametrize(
    ("env", "outcome"),
    [
        ({}, pytest.skip.Exception),
        ({"CI": "true"}, pytest.fail.Exception),
        ({"IKLEDGER_REQUIRE_BROWSER": "1"}, pytest.fail.Exception),
    ],
)
def test_a_missing_browser_skips_or_fails(monkeypatch, env, outcome):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("IKLEDGER_REQUIRE_BROWSER", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(outcome) as raised:
        browser._missing("Chromium is not installed: apt-get install chromium fonts-dejavu-core")
    assert "apt-get install chromium" in str(raised.value)
