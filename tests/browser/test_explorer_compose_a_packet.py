"""In a real browser: compose a packet, see its trace; change the destination port and see the verdict change in
place (no reload, no layout jump, the URL follows); step through the trace and see each step outlined in the
structure graph."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.browser.explorer_browser import logged_in_page, screenshot
from tests.web.explorer_support import analysed_example

pytestmark = pytest.mark.browser


def test_compose_a_packet_and_see_the_verdict_change(live_server: Any, transactional_db: None) -> None:
    from playwright.sync_api import expect

    user = User.objects.create_user("browser-compose")
    analysis = analysed_example(user)
    with logged_in_page(live_server, user) as page:
        page.goto(f"{live_server.url}/a/{analysis.slug}/compose/?src=10.1.1.1&dport=8083")
        result = page.locator("#compose-result")
        verdict = result.locator("h3.disposition")
        expect(verdict).to_have_text(re.compile(r"ACCEPTED_TO_SOCKET: .*virtualInbound"))
        expect(result).to_contain_text("TPROXY")
        # every rule the packet matched is tinted in the structure graph
        assert page.locator(".structure-diagram g.mv-path").count() >= 1
        graph_top = page.locator("#structure").bounding_box()
        marker = page.evaluate("window.__noReload = 1")  # survives only if the page is not reloaded
        assert marker == 1

        # Istio leaves 15021 (health) uncaptured: the trace updates in place without TPROXY
        dport = page.locator("input[name=dport]")
        dport.fill("15021")
        expect(verdict).not_to_contain_text("virtualInbound")
        expect(result).not_to_contain_text("-j TPROXY")
        assert page.evaluate("window.__noReload") == 1
        assert "dport=15021" in page.url
        assert page.locator("#structure").bounding_box() == graph_top  # reserved space: nothing below moved

        # bad input is named, in place
        dport.fill("99999")
        expect(result.locator("[data-compose-errors]")).to_contain_text("dport")
        assert page.locator("#structure").bounding_box() == graph_top

        # the application opening an outbound connection: captured by nat OUTPUT to Envoy's 15001
        page.locator("input[name=entry][value=local]").check()
        page.locator("input[name=src]").fill("172.16.188.31")
        page.locator("input[name=dst]").fill("203.0.113.10")
        dport.fill("443")
        expect(result).to_contain_text("ISTIO_REDIRECT")
        assert "entry=local" in page.url and "uid=1000" in page.url

        # step through: n outlines the current step in the graph
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press("n")
        expect(result.locator("li.step.current")).to_have_count(1)
        expect(result.locator("[data-step-pos]")).to_have_text(re.compile(r"step 1 of \d+"))
        rule_step = result.locator("li.step.kind-rulematch").first
        rule_step.click()
        expect(rule_step).to_have_class(re.compile(r"\bcurrent\b"))
        node = rule_step.get_attribute("data-node")
        assert node and page.locator(".structure-diagram g.mv-current").count() == 1
        assert page.evaluate("document.querySelector('.structure-diagram g.mv-current').id") in (node, f"a_{node}")
        assert re.search(r"step=\d+", page.url)
        screenshot(page, "composer", full_page=True)
