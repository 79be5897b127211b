"""In a real browser, an nft pod's explorer: the rule table (nft tables, keyboard filter, a rule opened in place with
the connections that hit it), the structure page's hook order and sets, and a what-if nft policy edit from the form
with its verdict diff; at 1280 px and 390 px, no sideways scrolling and no serious or critical axe-core violation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from tests.browser.explorer_browser import logged_in_page, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def _serious_axe_violations(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_nft_rule_table_structure_and_whatif(live_server: Any, transactional_db: None) -> None:
    from playwright.sync_api import expect

    from tests.web.explorer_support import analysed_nft

    user = User.objects.create_user("browser-nft")
    analysis = analysed_nft(user)
    base = f"{live_server.url}/a/{analysis.slug}"
    violations: dict[str, list[dict[str, Any]]] = {}
    with logged_in_page(live_server, user) as page:
        page.goto(f"{base}/rules/")
        rows = page.locator("tr.rule-row")
        expect(rows.first).to_contain_text("inet istio-proxy-nat")
        page.keyboard.press("/")
        page.keyboard.type("tproxy ip to")
        visible = page.locator("tr.rule-row:visible")
        expect(visible).to_have_count(1)
        page.keyboard.press("Escape")
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        card = page.locator("#rule-detail article.rule-card")
        expect(card).to_contain_text("istio-tproxy")
        expect(card.locator(".rule-connections")).to_contain_text("#1")
        assert re.search(r"/rules/inet(%20| )istio-proxy-mangle/istio-tproxy/1", page.url), page.url
        screenshot(page, "nft-rules")
        violations["rules"] = _serious_axe_violations(page)

        page.goto(f"{base}/structure/")
        expect(page.locator("#nft-hook-order")).to_contain_text("inet istio-proxy-mangle")
        screenshot(page, "nft-structure", full_page=True)
        violations["structure"] = _serious_axe_violations(page)

        page.goto(f"{base}/whatif/")
        page.locator("select[name=op]").select_option("policy")
        page.locator("input[name=table]").fill("inet istio-proxy-mangle")
        page.locator("input[name=chain]").fill("prerouting")
        page.locator("select[name=policy]").select_option("drop")
        page.locator("#add-edit").click()
        expect(page.locator("[data-verdict-diff]")).to_contain_text("UPSTREAM_CONNECT_FAILURE")
        expect(page.locator(".patch-text")).to_contain_text("policy drop;")
        screenshot(page, "nft-whatif")
        violations["whatif"] = _serious_axe_violations(page)

        page.set_viewport_size({"width": 390, "height": 844})
        edits = json.dumps(
            [{"op": "policy", "table": "inet istio-proxy-mangle", "chain": "prerouting", "value": "drop"}]
        )
        for path in (
            "/rules/",
            "/structure/",
            f"/rules/{quote('inet istio-proxy-nat')}/output/2",
            f"/whatif/?edits={quote(edits)}",
        ):
            page.goto(base + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} scrolls sideways: {width} px"
            violations[f"{path}-390"] = _serious_axe_violations(page)
    assert not any(violations.values()), {k: v for k, v in violations.items() if v}
