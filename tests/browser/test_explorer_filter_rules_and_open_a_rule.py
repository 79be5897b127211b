"""In a real browser: open a bundled example, go to its rule table, filter with the keyboard (/), move with j/k,
open a rule with Enter and by clicking, and see the connections that hit it; the URL follows (deep link)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.browser.explorer_browser import logged_in_page, screenshot

pytestmark = pytest.mark.browser

EXAMPLE_TITLE = "TPROXY without the policy route: 503 UF"


def test_filter_rules_and_open_one(live_server: Any, transactional_db: None) -> None:
    from playwright.sync_api import expect

    user = User.objects.create_user("browser-rules")
    with logged_in_page(live_server, user) as page:
        page.goto(f"{live_server.url}/new/")
        page.get_by_role("button", name=EXAMPLE_TITLE).click()
        page.wait_for_url(re.compile(r"/a/[A-Za-z0-9_-]{20,}/$"))
        expect(page.locator(".state")).to_have_text("done")
        page.locator("a.explorer-link").click()
        page.wait_for_url(re.compile(r"/rules/$"))
        slug = page.url.rstrip("/").split("/")[-2]

        rows = page.locator("tr.rule-row")
        total = rows.count()
        assert total > 20
        count = page.locator("[data-rule-count]")
        expect(count).to_have_text(f"{total} of {total} rules")

        # "/" focuses the filter; typing filters in place and the URL keeps it
        page.keyboard.press("/")
        expect(page.locator("#rule-filter")).to_be_focused()
        page.keyboard.type("TPROXY")
        visible = page.locator("tr.rule-row:visible")
        expect(count).not_to_have_text(f"{total} of {total} rules")
        shown = visible.count()
        assert 0 < shown < total
        for i in range(shown):
            expect(visible.nth(i)).to_contain_text("TPROXY")
        assert "q=TPROXY" in page.url
        page.keyboard.press("Escape")

        # j moves to the first visible rule, j again to the next, k back; Enter opens it in place
        page.keyboard.press("j")
        expect(visible.first).to_have_class(re.compile(r"\bcurrent\b"))
        page.keyboard.press("j")
        page.keyboard.press("k")
        expect(visible.first).to_have_class(re.compile(r"\bcurrent\b"))
        layout_before = page.locator(".rules-scroll").bounding_box()
        page.keyboard.press("Enter")
        detail = page.locator("#rule-detail")
        expect(detail.locator("article.rule-card")).to_be_visible()
        first_url = visible.first.get_attribute("data-url")
        assert first_url and page.url.split("?")[0].endswith(first_url)
        assert page.locator(".rules-scroll").bounding_box() == layout_before  # the detail panel did not move the table

        # click the TPROXY rule every inbound connection hits: its connections and the steps around it
        hit = page.locator("tr.rule-row.hit:visible", has_text="-j TPROXY").first
        hit.locator("td.explanation").click()
        expect(detail).to_contain_text("transparently hand to port 15006")
        connections = detail.locator(".rule-connections li")
        expect(connections.first).to_contain_text("#1")
        expect(connections.first.locator("a")).to_have_attribute("href", f"/a/{slug}/#connection-1")
        expect(detail.locator("li.this-rule").first).to_be_visible()
        assert re.search(rf"/a/{slug}/rules/mangle/[A-Z_]+/\d+", page.url)
        screenshot(page, "rules-filtered-rule-open")

        # the deep link alone renders the same rule, highlighted
        deep = page.url
        page.goto(deep)
        expect(page.locator("tr.rule-row.selected")).to_have_count(1)
        expect(page.locator("#rule-detail")).to_contain_text("transparently hand to port 15006")

        # the structure view: the graph pans and zooms, and a rule in it opens its deep link
        page.get_by_role("link", name="Structure", exact=True).click()
        svg = page.locator(".structure-diagram svg")
        expect(svg).to_be_visible()
        assert svg.locator("g.node").count() > 10
        screenshot(page, "structure")
        page.locator('[id="a_rule:mangle:ISTIO_TPROXY:1"] a').dispatch_event("click")
        page.wait_for_url(re.compile(rf"/a/{slug}/rules/mangle/ISTIO_TPROXY/1$"))
        expect(page.locator("tr.rule-row.selected")).to_contain_text("TPROXY")
