"""In a real browser: start from the "missing policy route" example, read the verdict, zoom the diagram, copy the fix.

Drives Debian's chromium (/usr/bin/chromium, `make sysdeps`) through the PyPI `playwright` package (its wheel
bundles the driver; `playwright install` is never needed). Without either the test skips with the reason,
except with CI=true, where it fails. Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import ARTIFACTS, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

EXAMPLE_TITLE = "TPROXY without the policy route: 503 UF"
FIX_COMMAND = "ip rule add fwmark 1337 lookup 133"


def until(condition: Any, seconds: float = 5.0) -> None:
    """Poll `condition` (the page's Content-Security-Policy forbids wait_for_function's eval)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def zoom(diagram: Any) -> float:
    """svg-pan-zoom's zoom level of the diagram (1: as it fits the page)."""
    return float(diagram.evaluate("box => box.svgPanZoom.getZoom()"))


def test_start_from_the_missing_policy_route_example_and_copy_the_fix(live_server: Any, page: Page) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # /new/ asks to log in first and comes back
    log_in(page, live_server.url, "/new/")

    # /new/ -> the example's button -> the permalink page (the embedded mode runs the analysis in the request)
    page.goto(f"{live_server.url}/new/")
    page.get_by_role("button", name=EXAMPLE_TITLE).click()
    page.wait_for_url(re.compile(r"/a/[A-Za-z0-9_-]{20,}/$"))
    verdict = page.locator("h1.verdict")
    expect(verdict).to_be_visible()
    expect(verdict).to_contain_text("fails (REPLY_ESCAPES_VIA_eth0)")
    expect(verdict).to_contain_text("verified fix: ip rule: fwmark 1337 lookup 133")
    expect(page.locator(".state")).to_have_text("done")
    page.screenshot(path=str(ARTIFACTS / "missing-policy-route-page.png"), full_page=True)

    # the first connection's inline SVG diagram (vendored svg-pan-zoom): + and Ctrl+wheel zoom in, a plain wheel
    # scrolls the page (not the diagram), 0 resets
    diagram = page.locator("[data-panzoom]").first
    svg = diagram.locator("svg").first
    expect(svg).to_be_visible()
    assert svg.locator("g.node").count() > 0, "the diagram has no nodes"
    diagram.scroll_into_view_if_needed()
    diagram.screenshot(path=str(ARTIFACTS / "missing-policy-route-diagram.png"))
    home = zoom(diagram)

    diagram.focus()
    page.keyboard.press("+")
    zoomed = zoom(diagram)
    assert zoomed > home, (home, zoomed)

    box = diagram.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, max(box["y"], 0) + 200)
    before = page.evaluate("window.scrollY")
    page.mouse.wheel(0, 240)
    until(lambda: page.evaluate("window.scrollY") > before)
    assert zoom(diagram) == pytest.approx(zoomed), "a plain wheel must scroll the page, not zoom"
    # a window resize that leaves the diagram's width as it was keeps the reader's zoom
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    page.wait_for_timeout(400)
    assert zoom(diagram) == pytest.approx(zoomed), "a resize that keeps the box's width must keep the zoom"
    page.keyboard.down("Control")
    page.mouse.wheel(0, -240)
    page.keyboard.up("Control")
    until(lambda: zoom(diagram) > zoomed)

    diagram.focus()
    page.keyboard.press("0")
    assert zoom(diagram) == pytest.approx(home)

    # the fix: reached from the page's table of contents, verified, with the policy route to add
    page.get_by_role("link", name="the fix").click()
    fix = page.locator("#fix")
    expect(fix).to_be_in_viewport()
    expect(fix.locator("h2 .tag")).to_have_text("verified")
    artifact = fix.locator("figure.artifact", has=page.locator("pre", has_text=FIX_COMMAND)).first
    pre = artifact.locator("pre")
    expect(pre).to_be_visible()
    expect(pre).to_contain_text(FIX_COMMAND)
    fix.screenshot(path=str(ARTIFACTS / "missing-policy-route-fix.png"))

    # copy: the label says so (analysis.js shows "copied" for 1.5 s) and the clipboard holds the artifact
    button = artifact.locator("button.copy")
    expect(button).to_have_text("copy")
    button.click()
    expect(button).to_have_text("copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert FIX_COMMAND in copied
    assert copied == pre.text_content()
    expect(button).to_have_text("copy")  # and back
