"""Every /admin/ URL pattern (walked from meshviz.urls) sends an anonymous visitor and a non-staff user to the admin
login (or 404s), and never shows an API key's digest, a team or a cluster."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.review.support import MARKER, World, all_routes

pytestmark = pytest.mark.django_db


def _concrete(route: str, w: World) -> str:
    """A path for an admin route: converters and named groups filled with ids of alice's objects."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(w.key.pk) if "id" in m.group(1) else "accounts", route)
    path = re.sub(r"\(\?P<app_label>([^|)]+)[^)]*\)", r"\1", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    return "/" + path.replace("^", "").replace("$", "")


def test_every_admin_url_is_staff_only(world: World) -> None:
    routes = [r for r in all_routes() if r.startswith("admin/")]
    assert len(routes) > 20
    mallory = Client(raise_request_exception=False)
    mallory.force_login(world.mallory)
    wrong = []
    for route in routes:
        path = _concrete(route, world)
        for who, client in (("anon", Client(raise_request_exception=False)), ("mallory", mallory)):
            response = client.get(path)
            body = response.content.decode("utf-8", "replace").lower()
            if path == "/admin/login/":
                ok = response.status_code == 200
            elif path == "/admin/logout/":  # the admin's logout view is not wrapped in admin_view: no data either way
                ok = response.status_code in (302, 405)
            else:
                ok = response.status_code in (302, 404) and (
                    response.status_code == 404 or "/admin/login/" in response["Location"]
                )
            if not ok or MARKER in body or world.key.hashed in body:
                wrong.append(f"{who} GET {path} ({route}): {response.status_code}")
    assert not wrong, "\n".join(wrong)
