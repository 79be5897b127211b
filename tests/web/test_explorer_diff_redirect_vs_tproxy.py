"""/diff/<a>/<b>/ between the REDIRECT example and the TPROXY + original_src example lists the TPROXY rules added
to mangle, the Envoy changes and the verdicts that changed (the application sees the client instead of 127.0.0.6)."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from tests.web.explorer_support import REDIRECT, TPROXY_OK, analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_diff_lists_added_tproxy_rules_and_verdict_changes() -> None:
    user = explorer_user()
    redirect = analysed_example(user, REDIRECT)
    tproxy = analysed_example(user, TPROXY_OK)
    client = client_for(user)
    url = f"/diff/{redirect.slug}/{tproxy.slug}/"

    data = client.get(url, {"format": "json"}).json()
    assert data["errors"] == []
    [ipv4] = data["rulesets"]
    added = [(c["table"], c["chain"], r["text"]) for c in ipv4["chains"] for r in c["added"]]
    tproxy_rules = [a for a in added if "-j TPROXY" in a[2]]
    assert tproxy_rules and all(t == "mangle" for t, _, _ in tproxy_rules)
    assert any(c["table"] == "nat" and c["removed"] for c in ipv4["chains"])  # the nat REDIRECT capture is gone
    inbound = next(v for v in data["verdicts"] if v["connection"]["direction"] == "inbound")
    assert inbound["changed"] and "app_peer_ip" in inbound["changed_fields"]
    assert inbound["before_verdict"]["app_peer_ip"] == "127.0.0.6"
    assert inbound["after_verdict"]["app_peer_ip"] == "10.255.0.1"
    assert data["verdicts_changed"] >= 1
    assert data["envoy"]["listeners"] or data["envoy"]["clusters"]
    assert data["ip_rules"]["added"]  # the policy route TPROXY needs

    page = client.get(url).content.decode()
    for _, _, text in tproxy_rules:
        assert re.search(r'<li class="added"><span class="sign">\+</span> #\d+ <code>' + re.escape(escape(text)), page)
    assert '<tr class="differs">' in page and escape(inbound["before"]) in page and escape(inbound["after"]) in page
    assert "127.0.0.6" in page

    # swapping sides swaps added and removed
    swapped = client.get(f"/diff/{tproxy.slug}/{redirect.slug}/", {"format": "json"}).json()
    removed = [(c["table"], c["chain"], r["text"]) for c in swapped["rulesets"][0]["chains"] for r in c["removed"]]
    assert set(tproxy_rules) <= set(removed)


def test_the_explorer_picks_the_other_analysis_by_permalink() -> None:
    user = explorer_user()
    redirect = analysed_example(user, REDIRECT)
    tproxy = analysed_example(user, TPROXY_OK)
    client = client_for(user)
    listing = client.get(f"/a/{redirect.slug}/diff/").content.decode()
    assert f'href="/diff/{redirect.slug}/{tproxy.slug}/"' in listing
    picked = client.get(f"/a/{redirect.slug}/diff/", {"other": f"http://testserver/a/{tproxy.slug}/"})
    assert picked.status_code == 302 and picked["Location"] == f"/diff/{redirect.slug}/{tproxy.slug}/"
    assert client.get(f"/a/{redirect.slug}/diff/", {"other": "no-such-analysis"}).status_code == 404
