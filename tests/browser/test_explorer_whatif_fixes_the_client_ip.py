"""In a real browser: on the missing-policy-route example, add Istio's policy route in the what-if form (two edits),
see the inbound verdict change (the application sees the client), export the patch, and save the scratch copy as a
new analysis with its own permalink."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from meshviz.analyses.models import Analysis
from tests.browser.explorer_browser import logged_in_page, screenshot
from tests.web.explorer_support import analysed_example

pytestmark = pytest.mark.browser


def test_whatif_policy_route_fixes_the_client_ip_and_saves(live_server: Any, transactional_db: None) -> None:
    from playwright.sync_api import expect

    user = User.objects.create_user("browser-whatif")
    analysis = analysed_example(user)
    with logged_in_page(live_server, user) as page:
        page.goto(f"{live_server.url}/a/{analysis.slug}/whatif/")
        form = page.locator("[data-edit-form]")
        for kind, text in (
            ("ip_rule", "ip rule add fwmark 1337 lookup 133"),
            ("ip_route", "ip route add local default dev lo table 133"),
        ):
            form.locator("select[name=op]").select_option("append_text")
            expect(form.locator("input[name=table]")).to_be_disabled()  # fields of other operations are off
            form.locator("select[name=kind]").select_option(kind)
            form.locator("textarea[name=text]").fill(text)
            form.locator("#add-edit").click()
            page.wait_for_load_state()
            expect(page.locator(".edit-list")).to_contain_text(text)
        assert "edits=" in page.url

        table = page.locator("[data-verdict-diff]")
        changed = table.locator("tr.differs")
        expect(changed).to_have_count(1)
        expect(changed).to_contain_text("fails (REPLY_ESCAPES_VIA_eth0)")
        expect(changed.locator("td").nth(1)).to_contain_text("the application sees 10.255.0.1")
        expect(page.locator("pre.patch-text")).to_contain_text("+ip rule add fwmark 1337 lookup 133")
        screenshot(page, "whatif", full_page=True)

        # the scratch copy is in the URL: opening it again shows the same result
        page.goto(page.url)
        expect(page.locator("[data-verdict-diff] tr.differs")).to_have_count(1)

        with page.expect_download() as download:
            page.get_by_role("link", name="Export as a patch").click()
        patch = download.value.path().read_text()
        assert "+ip route add local default dev lo table 133" in patch

        page.locator("#save-whatif").click()
        page.wait_for_url(re.compile(r"/a/[A-Za-z0-9_-]{20,}/$"))
        assert f"/a/{analysis.slug}/" not in page.url
        expect(page.locator(".state")).to_have_text("done")
        expect(page.locator("h1.verdict")).to_contain_text("the application sees 10.255.0.1")
        screenshot(page, "whatif-saved")
        saved_slug = page.url.rstrip("/").split("/")[-1]
    # (the ORM refuses to run inside Playwright's event loop)
    copy = Analysis.objects.get(slug=saved_slug)
    assert copy.derived_from_id == analysis.pk and copy.owner_id == user.pk
