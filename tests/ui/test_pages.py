"""The pages in a real browser (Debian's Chromium) against a real `ikledger serve`.

Every test fails on a console error, a page error, a failed request or a CSP
violation (the `page` fixture of tests/browser.py).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from .conftest import CLIP, DELIVERIES, EXPECTED_STATUS, OTHER, TOKEN, log_in

# `make screenshot` sets this to docs/timeline.png; a test run never writes a tracked file.
SCREENSHOT_TO = "IKLEDGER_SCREENSHOT_TO"
CLIP_EVENTS = [d for d in DELIVERIES if d[4] == CLIP]


def asset_url(asset: str) -> str:
    return "/ui/asset?" + httpx.QueryParams({"url": asset}).__str__()


def test_without_a_session_nothing_of_an_event_is_shown(page, ledger):
    answer = httpx.get(ledger.url("/ui/event?id=ev-a1"), follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=")
    assert b"x_request_id" not in answer.content
    page.goto(ledger.url("/"))
    assert "/ui/login" in page.url
    page.goto(ledger.url("/ui/event?id=ev-a1"))
    assert "/ui/login" in page.url
    assert "x_request_id" not in page.content()
    assert "encoding_failed" not in page.content()


def test_log_in_once_then_log_out(page, ledger, problems):
    problems.allow("status of 401")
    page.goto(ledger.url("/ui/failures"))
    page.fill("input[name=token]", "not-the-token")
    page.click("form.login button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That is not the read token."
    page.fill("input[name=token]", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/failures$"))  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "ikledger_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback; https sets it
    assert cookie["expires"] > time.time()
    page.goto(ledger.url("/ui/log"))  # the session holds across pages
    assert page.url.endswith("/ui/log")
    page.click("form.logout button")
    page.wait_for_url(re.compile(r"/ui/login$"))
    page.goto(ledger.url("/ui"))
    assert "/ui/login" in page.url


def test_every_page_has_the_strict_policy(signed_in, ledger):
    for path in ["/ui", asset_url(CLIP), "/ui/failures", "/ui/event?id=ev-a1", "/ui/log"]:
        response = signed_in.goto(ledger.url(path))
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'self'"), path
    answer = httpx.get(ledger.url("/ui/login"))
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_assets_newest_first_with_counts_filter_and_search(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui"))
    links = page.locator("a.asset-link").all_inner_texts()
    assert links == [OTHER, CLIP]  # OTHER's last event is the newest
    clip_row = page.locator("table.assets tbody tr", has_text=CLIP)
    counts = clip_row.locator("td.num").all_inner_texts()
    assert counts == ["2", "3", "0", "1", "11"]  # ready, error, accepted, stuck, events
    page.select_option("select[name=status]", "stuck")
    page.click("form.filters button[type=submit]")
    assert "status=stuck" in page.url  # the filter is in the query string
    assert page.locator("a.asset-link").all_inner_texts() == [CLIP]
    page.goto(ledger.url("/ui?since=2024-01-03T00:00:00Z"))
    assert page.locator("a.asset-link").all_inner_texts() == [OTHER]
    # Cursor paging: one per page, in the same order.
    page.goto(ledger.url("/ui?limit=1"))
    assert page.locator("a.asset-link").all_inner_texts() == [OTHER]
    page.click("a[rel=next]")
    assert "cursor=" in page.url and "limit=1" in page.url
    assert page.locator("a.asset-link").all_inner_texts() == [CLIP]
    # Search by request id, by part of the URL, and straight to an event by its id.
    page.fill("header input[name=q]", "req-other")
    page.press("header input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q=req-other"))
    assert page.locator("main table a").all_inner_texts() == [OTHER]
    page.goto(ledger.url("/ui?q=CLIP.mp4"))
    assert set(page.locator("main table a").all_inner_texts()) == {CLIP}
    page.goto(ledger.url("/ui?q=ev-o2"))
    assert page.url.endswith("/ui/event?id=ev-o2")


def test_timeline_draws_one_bar_per_transformation_and_links_marks(signed_in, ledger, tmp_path):
    page = signed_in
    page.goto(ledger.url(asset_url(CLIP)))
    picture = page.locator("svg.timeline[role=img]")
    assert "6 transformations" in picture.locator("title#tl-label").text_content()
    rows = picture.locator("g.row")
    assert rows.count() == len(EXPECTED_STATUS)
    for request_id, status in EXPECTED_STATUS.items():
        row = picture.locator(f'g.row[data-request-id="{request_id}"]')
        assert row.get_attribute("data-status") == status
        assert row.locator("text.status-text").text_content().endswith(status)  # not colour only
        bar = row.locator("rect.bar")
        if request_id == "req-orphan":
            assert bar.count() == 0  # no accepted: marks only
            continue
        assert bar.get_attribute("data-status") == status
        title = bar.locator("title").text_content()
        assert f"request {request_id}" in title and f"status {status}" in title
    assert (
        "reason encoding_failed"
        in picture.locator('g.row[data-request-id="req-error"] rect.bar title').text_content()
    )
    marks = picture.locator("g.mark[data-event-id]")
    assert sorted(marks.evaluate_all("ms => ms.map(m => m.dataset.eventId)")) == sorted(
        d[1] for d in CLIP_EVENTS
    )
    assert "flag-late" in picture.locator('g.mark[data-event-id="ev-a2"]').get_attribute("class")
    assert "flag-repeat" in picture.locator('g.mark[data-event-id="ev-e5"]').get_attribute("class")
    orphan = picture.locator('g.mark[data-event-id="ev-e4"]').get_attribute("class")
    assert "flag-no_accepted" in orphan
    screenshot = Path(os.environ.get(SCREENSHOT_TO) or tmp_path / "timeline.png")
    page.screenshot(path=str(screenshot), clip={"x": 0, "y": 0, "width": 1280, "height": 720})
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n")
    # Follow a marker to its event: the raw body is exactly what was sent.
    page.click('svg.timeline a[href$="id=ev-r1"]')
    page.wait_for_url(re.compile(r"/ui/event\?id=ev-r1$"))
    shown = page.locator("#raw-body").evaluate("e => e.textContent")
    assert shown == ledger.bodies["ev-r1"].decode()
    raw = page.request.get(ledger.url("/ui/event/raw?id=ev-r1"))
    assert raw.body() == ledger.bodies["ev-r1"]


def test_as_of_shows_the_timeline_as_it_stood(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url(asset_url(CLIP)))
    page.fill("input[name=as_of]", "3")
    page.click("form.filters button[type=submit]")
    assert "as_of=3" in page.url
    rows = page.locator("svg.timeline g.row")
    # Positions 1-3: req-ready's accepted, req-late's ready and accepted.
    assert rows.count() == 2
    # Accepted in 2024 and not ready as of position 3: stuck at the real time (the
    # page judges stuck at now, whatever position it shows the log as of).
    assert page.locator('g.row[data-request-id="req-ready"]').get_attribute("data-status") == (
        "stuck"
    )


def test_event_page_lists_every_delivery_and_the_conflict(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui/event?id=ev-r1"))
    outcomes = page.locator("table.deliveries tbody td:nth-child(2)").all_inner_texts()
    assert sorted(outcomes) == ["duplicate", "stored"]
    page.goto(ledger.url("/ui/event?id=ev-e3"))
    outcomes = page.locator("table.deliveries tbody td:nth-child(2)").all_inner_texts()
    assert sorted(outcomes) == ["conflict", "stored"]
    assert page.get_by_role("heading", name="Conflicting redeliveries").is_visible()
    pretty = page.locator(".bodies pre.body").nth(1).inner_text()
    assert '"reason": "encoding_failed"' in pretty
    page.click(f'dl.facts a:text("{CLIP}")')
    assert "/ui/asset?url=" in page.url


def test_failures_grouped_by_reason_link_to_their_asset(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui/failures"))
    groups = page.locator("section.group h2 .reason").all_inner_texts()
    assert sorted(groups) == sorted(
        ["encoding_failed", "download_failed", "internal_server_error", "stuck after accepted"]
    )
    stuck = page.locator("section.group", has_text="stuck after accepted")
    assert stuck.locator("td.mono").nth(1).inner_text() == "req-stuck"
    stuck.locator("a").first.click()
    page.wait_for_url(re.compile(r"/ui/asset\?url="))
    assert page.locator("h1").inner_text() == CLIP


def test_verify_and_rebuild_from_the_log_page(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui/log"))
    assert page.locator("#event-count").inner_text() == str(len(DELIVERIES))
    page.click("#verify button")
    page.wait_for_url(re.compile(r"/ui/log#verify$"))
    deadline = time.monotonic() + 30  # verify runs in the background: reload until it shows
    while page.locator("#verify-result").count() == 0:
        assert time.monotonic() < deadline, page.locator("#verify").inner_text()
        time.sleep(0.2)
        page.goto(ledger.url("/ui/log"))
    assert page.locator("#verify-result").inner_text().startswith("✓ ok, 13 events")
    assert page.locator("#chain-head").inner_text() in page.locator("#verify-result").inner_text()
    generation = int(page.locator("table.projections tbody td:nth-child(3)").first.inner_text())
    page.click("#rebuild button")
    deadline = time.monotonic() + 30
    while "Rebuilt" not in page.locator("#rebuild-state").inner_text():
        assert time.monotonic() < deadline, page.locator("#rebuild-state").inner_text()
        time.sleep(0.2)
        page.goto(ledger.url("/ui/log"))
    assert "timeline 13 events" in page.locator("#rebuild-state").inner_text()
    after = int(page.locator("table.projections tbody td:nth-child(3)").first.inner_text())
    assert after > generation
    page.goto(ledger.url(asset_url(CLIP)))  # the rebuilt model serves the same picture
    assert page.locator("svg.timeline g.row").count() == len(EXPECTED_STATUS)


def test_actions_refuse_a_post_without_the_csrf_token(signed_in, ledger):
    request = signed_in.request
    for path in ["/ui/log/rebuild", "/ui/log/verify", "/ui/logout"]:
        assert request.post(ledger.url(path), form={"csrf": "forged"}).status == 403
        assert request.post(ledger.url(path)).status == 403
    signed_in.goto(ledger.url("/ui/log"))  # still signed in: the forged logout did nothing
    assert signed_in.url.endswith("/ui/log")


def test_reading_works_with_javascript_off(browser, ledger):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, ledger, asset_url(CLIP))
        assert page.locator("svg.timeline g.row").count() == len(EXPECTED_STATUS)
        page.click('svg.timeline a[href$="id=ev-e3"]')
        page.wait_for_url(re.compile(r"id=ev-e3$"))
        assert "encoding_failed" in page.locator("#raw-body").inner_text()
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/ui/asset?url=https://nowhere.example/x.mp4", "/ui?status=nope"])
def test_bad_input_is_an_error_page_not_a_crash(signed_in, ledger, problems, path):
    problems.allow("Failed to load resource")
    response = signed_in.goto(ledger.url(path))
    assert response.status in (400, 404)
    assert signed_in.locator("h1").inner_text() == "Cannot show this"


def test_the_fields_table_wraps_to_the_page_or_scrolls_in_its_box(signed_in, ledger):
    page = signed_in
    measure = (
        "e => ({client: e.clientWidth, scroll: e.scrollWidth, overflow: getComputedStyle(e).overflowX,"
        " page: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    for width in (1280, 900):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(ledger.url(asset_url(CLIP)))
        sizes = page.locator("table.fields").locator("xpath=..").evaluate(measure)
        assert sizes["page"] <= sizes["view"], sizes  # nothing runs off the page's edge
        if width == 1280:  # wide enough: every column in view, long cells wrapped
            assert sizes["scroll"] <= sizes["client"], sizes
        else:
            assert sizes["overflow"] == "auto", sizes
    headers = page.locator("table.fields th").all_inner_texts()
    assert "attempts" in [h.lower() for h in headers]
