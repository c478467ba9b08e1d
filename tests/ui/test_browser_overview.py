"""The Overview, Events and Refused deliveries pages in Chromium against a real server.

Every test fails on a console error, a page error, a failed request or a CSP
violation (the `page` fixture of tests/browser.py).
"""

from __future__ import annotations

import re
import time

import httpx

from .conftest import DELIVERIES, OTHER, TOKEN, log_in

AUTH = {"Authorization": f"Bearer {TOKEN}"}
RANGE = "since=2024-01-02T00:00:00Z&until=2024-01-04T00:00:00Z&bucket=1d"
PAGES = [f"/ui/overview?{RANGE}", "/ui/events", "/ui/events?q=other", "/ui/rejections?since="]


def test_each_new_page_loads_clean_under_the_strict_policy(signed_in, ledger):
    for path in PAGES:
        response = signed_in.goto(ledger.url(path))
        assert response.status == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert signed_in.locator("h1").count() == 1, path


def test_overview_numbers_equal_get_stats(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url(f"/ui/overview?{RANGE}"))
    api = httpx.get(ledger.url(f"/stats?{RANGE}"), headers=AUTH, timeout=10).json()
    for status in ("ready", "error", "stuck", "running"):
        assert page.locator(f"#total-{status}").inner_text() == str(api["transformations"][status])
    assert page.locator("#total-events").inner_text() == str(len(DELIVERIES))
    assert api["transformations"]["stuck"] == 1 and api["transformations"]["ready"] == 3
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() == 3
    bars = page.locator("svg.chart g.bar rect.seg")
    titles = {bars.nth(i).locator("title").text_content() for i in range(bars.count())}
    assert titles == {f"{b['start']}: {b['ready']} ready, {b['error']} error, {b['stuck']} stuck"
                      for b in api["buckets"] if b["ready"] + b["error"] + b["stuck"]}  # fmt: skip
    # The range picker is the query string: a quick link changes it.
    page.click("form.filters .quick a:text-is('all time')")
    page.wait_for_url(re.compile(r"since=&bucket=1d"))
    assert page.locator("#total-events").inner_text() == str(len(DELIVERIES))
    # Stuck right now links to its asset's timeline.
    page.click("table.stuck a")
    page.wait_for_url(re.compile(r"/ui/asset\?url="))


def test_events_search_from_the_form_then_open_one(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui/events"))
    assert page.locator("a.event-link").count() == len(DELIVERIES)
    page.fill("form.filters input[name=q]", "other")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"q=other"))
    assert page.locator("a.event-link").all_inner_texts() == ["ev-o2", "ev-o1"]
    page.click("a.event-link:text-is('ev-o1')")
    page.wait_for_url(re.compile(r"/ui/event\?id=ev-o1$"))
    assert OTHER in page.content()


def test_a_refused_delivery_shows_with_its_status_and_reason(signed_in, ledger):
    body = b'{"type": "video.transformation.accepted"}'
    refused = httpx.post(
        ledger.url("/webhook"), content=body, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 401
    deadline = time.monotonic() + 30
    while not httpx.get(ledger.url("/rejections"), headers=AUTH, timeout=5).json()["rejections"]:
        assert time.monotonic() < deadline, "the refusal was never journalled"
        time.sleep(0.05)
    page = signed_in
    page.goto(ledger.url("/ui/rejections?since="))
    row = page.locator("table.rejections tbody tr").first
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "401" and cells[2] == refused.json()["code"]
    assert cells[4] == str(len(body))
    assert page.locator("svg.chart[role=img] g.reason-row title").first.text_content() == (
        f"{cells[2]}: 1 refusals"
    )


def test_reading_the_new_pages_works_with_javascript_off(browser, ledger):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, ledger, f"/ui/overview?{RANGE}")
        assert page.locator("svg.chart[role=img]").count() == 3
        page.goto(ledger.url("/ui/events"))
        page.fill("form.filters input[name=q]", "other")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"q=other"))
        assert page.locator("a.event-link").all_inner_texts() == ["ev-o2", "ev-o1"]
        page.goto(ledger.url("/ui/rejections?since="))
        assert page.locator("h1").inner_text() == "Refused deliveries"
    finally:
        context.close()


def test_a_click_on_the_timeline_axis_zooms_and_the_form_zooms_back_out(signed_in, ledger):
    page = signed_in
    page.goto(ledger.url("/ui/asset?" + str(httpx.QueryParams({"url": OTHER}))))
    # OTHER's transformation took 9 s, over a day after CLIP's: zoom around its first tick.
    page.locator("svg.timeline a.zoom-link").first.click()
    page.wait_for_url(re.compile(r"from=.*&to="))
    assert "in the window" in page.locator("svg.timeline title#tl-label").text_content()
    page.fill("form.zoom input[name=from]", "2024-01-03T09:59:58Z")
    page.fill("form.zoom input[name=to]", "2024-01-03T10:00:11Z")
    page.click("form.zoom button[type=submit]")
    page.wait_for_url(re.compile(r"to=2024-01-03T10%3A00%3A11Z"))
    bar = page.locator('svg.timeline g.row[data-request-id="req-other"] rect.bar')
    assert float(bar.get_attribute("width")) > 500  # 9 s of a 13 s window: a bar, not a dot
    page.click("a.unzoom")
    page.wait_for_url(lambda url: "from=" not in url)
