"""Every page carries a Content-Security-Policy that forbids inline script, and no page has one (no <script>
without src, no on* handler attributes, no javascript: URLs); SVG diagrams are served with default-src 'none'."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.test import Client

from meshviz.clusters.models import Cluster
from meshviz.web.security import PAGE_POLICY
from tests.web.explorer_support import analysed_example, client_for

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def _check_page(response: Any, url: str) -> None:
    assert response.status_code == 200, (url, response.status_code)
    policy = response["Content-Security-Policy"]
    assert policy == PAGE_POLICY, url
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    body = response.content.decode()
    assert not INLINE_SCRIPT.search(body), (url, INLINE_SCRIPT.search(body))
    assert not HANDLER.search(body), (url, HANDLER.search(body))
    assert "javascript:" not in body.lower(), url
    if "<style" in body:
        raise AssertionError(f"{url}: inline <style> (style-src 'self')")


def test_pages_have_the_policy_and_no_inline_script(user: User, settings: Any) -> None:
    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()
    analysis = analysed_example(user)
    cluster = Cluster.objects.create(owner=user, name="c", kind=Cluster.Kind.KUBECONFIG, kubeconfig_encrypted="x")
    client = client_for(user)
    slug = analysis.slug
    urls = [
        "/",
        "/new/",
        f"/a/{slug}/",
        f"/a/{slug}/structure/",
        f"/a/{slug}/rules/",
        f"/a/{slug}/compose/",
        f"/a/{slug}/whatif/",
        f"/a/{slug}/diff/",
        f"/diff/{slug}/{slug}/",
        "/account/",
        "/clusters/",
        f"/clusters/{cluster.pk}/",
        "/api/docs/",
    ]
    for url in urls:
        _check_page(client.get(url), url)
    _check_page(Client().get("/login/"), "/login/")
    # the Swagger UI's init script is a separate response, not inline
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


def test_svg_diagrams_get_default_src_none(user: User) -> None:
    analysis = analysed_example(user)
    client = client_for(user)
    for url in (f"/a/{analysis.slug}/diagram/1.svg", f"/api/v1/analyses/{analysis.slug}/diagram.svg"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("image/svg+xml")
        assert response["Content-Security-Policy"].startswith("default-src 'none'")
