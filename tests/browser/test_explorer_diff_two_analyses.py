"""In a real browser: from the REDIRECT example's explorer, pick the TPROXY example to diff against and read the
TPROXY rules added, the Envoy changes and the verdict that changed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.browser.explorer_browser import logged_in_page, screenshot
from tests.web.explorer_support import REDIRECT, TPROXY_OK, analysed_example

pytestmark = pytest.mark.browser


def test_diff_redirect_and_tproxy_analyses(live_server: Any, transactional_db: None) -> None:
    from playwright.sync_api import expect

    user = User.objects.create_user("browser-diff")
    redirect = analysed_example(user, REDIRECT)
    tproxy = analysed_example(user, TPROXY_OK)
    with logged_in_page(live_server, user) as page:
        page.goto(f"{live_server.url}/a/{redirect.slug}/rules/")
        page.get_by_role("link", name="Diff", exact=True).click()
        page.locator(f'a[href="/diff/{redirect.slug}/{tproxy.slug}/"]').click()
        page.wait_for_url(re.compile(rf"/diff/{redirect.slug}/{tproxy.slug}/$"))

        rules = page.locator("#rules")
        added_tproxy = rules.locator("li.added", has_text="-j TPROXY")
        assert added_tproxy.count() >= 1
        expect(added_tproxy.first).to_contain_text("--on-port 15006")
        expect(rules.locator("li.removed", has_text="REDIRECT").first).to_be_visible()
        verdicts = page.locator("#verdicts tr.differs")
        expect(verdicts.first).to_contain_text("127.0.0.6")
        expect(verdicts.first.locator("td").nth(1)).to_contain_text("10.255.0.1")
        expect(page.locator("#envoy")).to_contain_text("virtualInbound")
        expect(page.locator("#routing li.added", has_text="fwmark 1337").first).to_be_visible()
        screenshot(page, "diff", full_page=True)

        page.get_by_role("link", name="swap sides").click()
        page.wait_for_url(re.compile(rf"/diff/{tproxy.slug}/{redirect.slug}/$"))
        expect(page.locator("#rules li.removed", has_text="-j TPROXY").first).to_be_visible()
