"""A rule comment `<script>alert(1)</script>` shows as text in the rules list and in the diagram, never as markup."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from tests.analyses.helpers import REDIRECT_RULES, evidence_payload

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def test_script_in_a_rule_comment_renders_inert(
    client: Client, api_key: str, django_capture_on_commit_callbacks: Any
) -> None:
    # put the comment on the rule every inbound connection hits, so it is in the diagram's labels too
    rule = "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"
    assert rule in REDIRECT_RULES
    rules = REDIRECT_RULES.replace(
        rule, f'-A ISTIO_IN_REDIRECT -p tcp -m comment --comment "{SCRIPT}" -j REDIRECT --to-ports 15006'
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = APIClient(HTTP_AUTHORIZATION=f"Api-Key {api_key}").post(
            "/api/v1/analyses/", evidence_payload(iptables=rules), format="json"
        )
    assert created.status_code == 201, created.content
    analysis = Analysis.objects.get(slug=created.json()["slug"])
    assert analysis.state == "done", analysis.error

    page = client.get(f"/a/{analysis.slug}/").content.decode()
    assert SCRIPT not in page
    assert "alert(1)" in page  # it is shown, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the only script elements are the page's own (no inline scripts at all)
    assert re.findall(r"<script\b[^>]*>", page, re.I) == [
        '<script src="/static/vendor/svg-pan-zoom/svg-pan-zoom.min.js" defer>',
        '<script src="/static/js/analysis.js" defer>',
    ]
    # the highlighted rule is the commented one, escaped
    assert re.search(r'<li class="rule hit"[^>]*><code>[^<]*&lt;script&gt;alert\(1\)&lt;/script&gt;', page)
    # and the diagram carries it as text
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert "alert(1)" in svg and "<script" not in svg.lower()

    diagram = client.get(f"/a/{analysis.slug}/diagram/1.svg").content.decode()
    assert "<script" not in diagram.lower() and "alert(1)" in diagram
