"""Start from a bundled example -> the permalink page says the verdict in one sentence and draws the flow."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from meshviz.analyses import examples

from .helpers import from_example

pytestmark = pytest.mark.django_db


def test_the_new_page_offers_the_four_examples_and_home_links_to_it(client: Client) -> None:
    assert 'href="/new/"' in client.get("/").content.decode()
    page = client.get("/new/").content.decode()
    names = [e.name for e in examples.examples()]
    assert names == [
        "redirect-app-sees-127.0.0.6",
        "tproxy-original-src-app-sees-client",
        "tproxy-missing-policy-route-503-uf",
        "tproxy-istio-1.6-loop",
    ]
    for name in names:
        assert f'action="/new/example/{name}/"' in page
    assert "csrfmiddlewaretoken" in page
    assert "Apache-2.0" in page


def test_redirect_example_page_has_the_verdict_sentence_and_an_inline_svg(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    assert analysis.state == "done"

    response = client.get(f"/a/{analysis.slug}/")
    assert response.status_code == 200
    page = response.content.decode()
    # the one-sentence verdict is the page's heading
    summary = analysis.results["summary"]
    assert "127.0.0.6" in summary
    heading = re.search(r'<h1 class="verdict">(.*?)</h1>', page, re.S)
    assert heading is not None and "127.0.0.6" in heading.group(1)
    # one inline diagram per connection (inbound + the default outbound) and the REDIRECT vs TPROXY one, no XML
    # prolog inside the HTML
    assert page.count('class="diagram flow-diagram"') == len(analysis.results["stories"]) == 2
    assert page.count('class="diagram compare-diagram"') == 1
    assert page.count("<svg") == 3
    assert "<?xml" not in page
    assert "data-panzoom" in page and "/static/js/analysis.js" in page
    # REDIRECT vs TPROXY side by side, the differing rows highlighted
    assert 'id="comparison"' in page and '<tr class="differs">' in page
    # the fix: TPROXY, with copy and download for each artifact
    assert "verified" in page
    assert 'data-copy-target="artifact-1-1"' in page
    assert f'href="/a/{analysis.slug}/fix/1/1.txt"' in page
    # the rules the inbound connection hit are highlighted: the REDIRECT to 15006
    hit = re.search(r'<li class="rule hit"[^>]*><code>([^<]*REDIRECT --to-ports 15006)</code>', page)
    assert hit is not None
    # no refresh once done
    assert 'http-equiv="refresh"' not in page


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("tproxy-original-src-app-sees-client", ["10.255.0.1"]),
        ("tproxy-missing-policy-route-503-uf", ["REPLY_ESCAPES_VIA_eth0"]),
        ("tproxy-istio-1.6-loop", ["LOOP"]),
    ],
)
def test_the_other_examples_give_their_verdicts(
    client: Client, django_capture_on_commit_callbacks: Any, name: str, words: list[str]
) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks, name)
    assert analysis.state == "done", analysis.error
    page = client.get(f"/a/{analysis.slug}/").content.decode()
    for word in words:
        assert word in page
    assert "<svg" in page


def test_fix_artifact_downloads_as_a_text_attachment(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    response = client.get(f"/a/{analysis.slug}/fix/1/1.txt")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response.content.decode() == analysis.results["fix"]["patches"][0]["artifacts"][0]["content"]
    assert client.get(f"/a/{analysis.slug}/fix/1/99.txt").status_code == 404
    assert client.get(f"/a/{analysis.slug}/fix/9/1.txt").status_code == 404


def test_queued_analysis_page_refreshes_itself_and_failed_shows_the_error(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    analysis.state = "queued"
    analysis.results = None
    analysis.save()
    page = client.get(f"/a/{analysis.slug}/").content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "queued" in page

    analysis.state = "failed"
    analysis.error = "ValueError: <b>boom</b>"
    analysis.save()
    page = client.get(f"/a/{analysis.slug}/").content.decode()
    assert "The analysis failed" in page
    assert "ValueError: &lt;b&gt;boom&lt;/b&gt;" in page
    assert 'http-equiv="refresh"' not in page
