"""Issue 16 in a real browser (Debian's chromium through Playwright), at 1440x900 and 390x844:

* the dashboard: badges, filters, examples; visitors see what meshviz answers;
* the four bundled examples' flow diagrams read at the default size: their smallest text is 11 px or more;
* REDIRECT vs TPROXY drawn side by side on the page;
* a public permalink's og:image is a PNG anyone can fetch;
* no sideways scrolling at 390 px, no console errors (the favicon exists), and axe-core (vendored,
  tests/browser/vendor/axe-core) finds no serious or critical violation.

Screenshots land in tests/artifacts/issue16-*.png (git-ignored); the smallest diagram text per example is written to
tests/artifacts/issue16-diagram-text.txt.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import ARTIFACTS, PASSWORD, USERNAME, chromium_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
MIN_TEXT_PX = 11.0


def _analyses(user_name: str) -> list[tuple[str, str]]:
    """One public analysis per bundled example, owned by the browser user: (example name, slug)."""
    from django.contrib.auth.models import User

    from meshviz.analyses import examples, services
    from meshviz.analyses.tasks import analyse

    user = User.objects.get(username=user_name)
    out = []
    for ex in examples.examples():
        a = services.create_from_example(ex, owner=user, public=True)
        analyse.apply(args=[a.pk])
        out.append((ex.name, a.slug))
    return out


def _log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login/?next=/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def _axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (injected through the CDP: no CSP exception)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} scrolls sideways: {width} px"  # type: ignore[index]


def _smallest_diagram_text(page: Page) -> float:
    return float(
        page.evaluate(
            """() => { let min = 1e9;
              document.querySelectorAll('.flow-diagram svg text').forEach(t => {
                const f = parseFloat(t.getAttribute('font-size')); const m = t.getScreenCTM();
                if (f && m) min = Math.min(min, f * m.a); });
              return min; }"""
        )
    )


def test_dashboard_diagrams_comparison_and_preview(live_server: Any, browser_user: str) -> None:
    analyses = _analyses(browser_user)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    text_sizes: dict[str, float] = {}
    console_errors: list[str] = []
    violations: dict[str, list[dict[str, Any]]] = {}

    for width, height in ((1440, 900), (390, 844)):
        with chromium_page({"width": width, "height": height}) as page:
            page.on("console", lambda m: console_errors.append(f"{m.text} ({page.url})") if m.type == "error" else None)

            page.goto(f"{base}/")  # a visitor: what meshviz answers and the public examples
            assert "Why does my application see 127.0.0.6?" in page.content()
            assert page.locator(".dash-row").count() == len(analyses)
            page.screenshot(path=str(ARTIFACTS / f"issue16-home-visitor-{width}.png"), full_page=True)
            _no_sideways_scroll(page)

            _log_in(page, base)
            assert page.get_by_role("heading", name="Your dashboard").is_visible()
            badges = page.locator(".dash-row .badge").all_text_contents()
            assert {"app sees 127.0.0.6", "client IP preserved", "503 UF", "loop"} <= set(badges), badges
            page.screenshot(path=str(ARTIFACTS / f"issue16-dashboard-{width}.png"), full_page=True)
            _no_sideways_scroll(page)
            violations[f"dashboard-{width}"] = _axe(page)
            page.get_by_label("Verdict").select_option("loop")
            page.get_by_role("button", name="Filter").click()
            page.wait_for_url(re.compile(r"verdict=loop"))
            assert page.locator(".dash-row .badge").all_text_contents() == ["loop"]

            for name, slug in analyses:
                page.goto(f"{base}/a/{slug}/")
                page.locator(".flow-diagram svg").first.wait_for()
                if width == 1440:
                    text_sizes[name] = _smallest_diagram_text(page)
                    # a click on a step shows all of it: the deciding rule and the hooks folded into it
                    page.locator(".flow-diagram g.node.step:has(a)").first.click()
                    detail = page.locator(".step-detail").first
                    detail.wait_for()
                    assert detail.inner_text().strip(), "the step's text is shown"
                page.screenshot(path=str(ARTIFACTS / f"issue16-analysis-{name}-{width}.png"))
                page.locator(".flow-diagram").first.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"issue16-flow-{name}-{width}.png"))
                compare = page.locator(".compare-diagram").first
                assert compare.locator("svg").count() == 1
                assert "REDIRECT" in compare.inner_text() and "TPROXY" in compare.inner_text()
                compare.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / f"issue16-compare-{name}-{width}.png"))
                _no_sideways_scroll(page)
            violations[f"analysis-{width}"] = _axe(page)

            for path in (
                "/new/",
                "/clusters/",
                f"/a/{analyses[0][1]}/rules/",
                f"/a/{analyses[0][1]}/structure/?connection=1",
            ):
                page.goto(f"{base}{path}")
                _no_sideways_scroll(page)
                violations[f"{path}-{width}"] = _axe(page)
            page.screenshot(path=str(ARTIFACTS / f"issue16-structure-focus-{width}.png"))

    # the public permalink unfurls: og:image is a PNG served without login
    with chromium_page({"width": 1200, "height": 630}) as page:
        page.goto(f"{base}/a/{analyses[0][1]}/")
        image = page.locator('meta[property="og:image"]').get_attribute("content")
        assert image and image.endswith("/card.png")
        response = page.goto(image)
        assert response is not None and response.status == 200 and response.headers["content-type"] == "image/png"
        page.screenshot(path=str(ARTIFACTS / "issue16-og-image.png"))

    (ARTIFACTS / "issue16-diagram-text.txt").write_text(
        "".join(f"{name}: smallest diagram text {px:.1f} px at 1440x900\n" for name, px in text_sizes.items())
    )
    assert all(px >= MIN_TEXT_PX for px in text_sizes.values()), text_sizes
    assert not console_errors, console_errors
    assert not any(violations.values()), {k: v for k, v in violations.items() if v}
