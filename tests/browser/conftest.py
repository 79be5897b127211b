"""The browser tests' fixtures: Debian's chromium through Playwright, and logging in through the real form.

Drives /usr/bin/chromium (`make sysdeps`) through the PyPI `playwright` package (its wheel bundles the
driver; `playwright install` is never needed). Without either a test skips with the reason, except with
CI=true, where it fails. Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright._impl._api_structures import SetCookieParam  # what BrowserContext.add_cookies takes
    from playwright.sync_api import Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
#: milliseconds a single page action or expectation may take
TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"browser tests must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser_user(transactional_db: None) -> str:
    """The account the browser logs in with (created before Playwright starts its event loop, which the ORM
    refuses to run under)."""
    from django.contrib.auth.models import User

    User.objects.create_user(USERNAME, password=PASSWORD)
    return USERNAME


@contextmanager
def chromium_page(
    viewport: ViewportSize, *, permissions: Sequence[str] = (), cookies: Sequence[SetCookieParam] = ()
) -> Iterator[Page]:
    """A fresh chromium page of a new context with `permissions` and `cookies` (skips, or fails with CI=true, without
    a browser); a JavaScript error on the page fails the test. Do database work before: the ORM refuses to run under
    Playwright's event loop."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing: `make sysdeps` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: `make venv` installs requirements.txt")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport, permissions=list(permissions))
            if cookies:
                context.add_cookies(list(cookies))
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


@pytest.fixture
def page(browser_user: str) -> Iterator[Page]:
    """A fresh chromium page allowed to use the clipboard (skips, or fails with CI=true, without a browser)."""
    with chromium_page({"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]) as p:
        yield p


#: the user the browser tests log in as (the `browser_user` fixture creates it; `page` depends on it)
USERNAME = "browser-user"
PASSWORD = "a-long-browser-test-password"


def log_in(page: Page, base_url: str, path: str = "/") -> None:
    """Open `path`, which sends an anonymous visitor to the login form, log in there and land back on `path`."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}{path}")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{path}")
