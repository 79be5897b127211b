"""A logged-in Chromium page for the explorer's browser tests (the `chromium_page` of conftest.py, like
test_upload_example_and_read_the_fix.py's: skips without a browser, fails with CI=true; JavaScript errors on the page
fail the test), logged in with a session cookie. Screenshots go to tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.browser.conftest import ARTIFACTS, chromium_page

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

#: a laptop screen
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def screenshot(page: Page, name: str, **kw: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"explorer-{name}.png"), **kw)


@contextmanager
def logged_in_page(live_server: Any, user: User) -> Iterator[Page]:
    """A Chromium page whose session is `user`'s (the session cookie of a forced login)."""
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with chromium_page(
        VIEWPORT, cookies=[{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    ) as page:
        yield page
