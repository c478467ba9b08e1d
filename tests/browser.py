"""Debian's Chromium driven by Playwright, as session-scoped pytest fixtures.

Never `playwright install`: the browser is the system's `chromium`. Where it or the
Python package is missing the tests skip, naming what to install, except when CI
requires them (`CI=true` or `IKLEDGER_REQUIRE_BROWSER=1`), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Runs in every page before its own content: CSP violations reach the console too.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def browser_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("IKLEDGER_REQUIRE_BROWSER") == "1"


def _missing(what: str) -> None:
    if browser_required():
        pytest.fail(f"{what} (required because CI=true or IKLEDGER_REQUIRE_BROWSER=1)")
    pytest.skip(what)


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="session")
def browser() -> Iterator:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed: pip install playwright (the test extra)")
    path = chromium_path()
    if path is None:
        _missing("Chromium is not installed: apt-get install chromium fonts-dejavu-core")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Problems:
    """Console errors, page errors and failed requests seen by one page."""

    messages: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def allow(self, text: str) -> None:
        """Expect one message containing `text` (a page answered 4xx on purpose)."""
        self.allowed.append(text)

    def check(self) -> None:
        unexpected = list(self.messages)
        for text in self.allowed:
            found = next((m for m in unexpected if text in m), None)
            assert found is not None, f"expected a browser message with {text!r}"
            unexpected.remove(found)
        assert not unexpected, "the browser reported problems:\n" + "\n".join(unexpected)


def watch(page, problems: Problems) -> None:
    page.on(
        "console",
        lambda msg: msg.type == "error" and problems.messages.append(f"console: {msg.text}"),
    )
    page.on("pageerror", lambda exc: problems.messages.append(f"page error: {exc}"))
    # A request cut short by the next navigation (ERR_ABORTED) is not a failure.
    page.on(
        "requestfailed",
        lambda req: (
            req.failure != "net::ERR_ABORTED"
            and problems.messages.append(f"request failed: {req.url} {req.failure}")
        ),
    )


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(browser, problems):
    """A fresh context (no cookies) and page; fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    context.add_init_script(REPORT_CSP)
    opened = context.new_page()
    watch(opened, problems)
    try:
        yield opened
        problems.check()
    finally:
        context.close()
