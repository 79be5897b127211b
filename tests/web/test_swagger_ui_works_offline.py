"""Swagger UI at /api/docs/ loads its assets from this server, not a CDN (meshviz runs offline)."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_swagger_ui_assets_are_served_locally(client: Client) -> None:
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
