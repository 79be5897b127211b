"""Creating analyses for the web tests: from a bundled example, or from the REDIRECT evidence with a rule comment."""

from __future__ import annotations

from typing import Any

from django.test import Client

from meshviz.analyses.models import Analysis

REDIRECT_EXAMPLE = "redirect-app-sees-127.0.0.6"


def from_example(client: Client, capture: Any, name: str = REDIRECT_EXAMPLE) -> Analysis:
    """POST the example's button (running the queued task as the eager mode does) and return the analysis."""
    with capture(execute=True):
        response = client.post(f"/new/example/{name}/")
    assert response.status_code == 302, response.content
    slug = response["Location"].strip("/").split("/")[-1]
    assert response["Location"] == f"/a/{slug}/"
    return Analysis.objects.get(slug=slug)
