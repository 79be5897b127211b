"""A logged-in Chromium page for the explorer's browser tests (Debian's /usr/bin/chromium through the PyPI
`playwright` package, no browser download), like test_upload_example_and_read_the_fix.py's: skips without a browser,
fails with CI=true; JavaScript errors on the page fail the test. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 20_000
#: a laptop screen
VIEWPORT = {"width": 1280, "height": 800}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"browser tests must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(reason)


def screenshot(page: Page, name: str, **kw: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"explorer-{name}.png"), **kw)


@contextmanager
def logged_in_page(live_server: Any, user: User) -> Iterator[Page]:
    """A Chromium page whose session is `user`'s (the session cookie of a forced login)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing: `make sysdeps` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: `make venv` installs requirements.txt")
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()
