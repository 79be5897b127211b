from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

UNKNOWN = "x" * 30


@pytest.mark.parametrize(
    "url",
    [
        f"/a/{UNKNOWN}/",
        f"/a/{UNKNOWN}/diagram/1.svg",
        f"/a/{UNKNOWN}/diagram/1.png",
        f"/a/{UNKNOWN}/fix/1/1.txt",
        f"/api/v1/analyses/{UNKNOWN}/diagram.svg",
        "/new/example/no-such-example/",
    ],
)
def test_unknown_analysis_or_example_is_404(client: Client, url: str) -> None:
    response = client.post(url) if url.startswith("/new/") else client.get(url)
    assert response.status_code == 404
