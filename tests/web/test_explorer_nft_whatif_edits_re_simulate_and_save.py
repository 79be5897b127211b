"""What-if on an nft pod: the form adds nft edits (a rule, a base chain's policy, a set or map element) in the same
`?edits=` JSON as iptables edits plus `backend`; every connection is re-simulated and the verdict diff and the patch
shown; a bad rule is a 400 naming the edit, line and column; the API takes the same edits; saving keeps the nft
rules."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from meshviz.analyses.models import Analysis
from tests.web.explorer_support import analysed_nft, client_for, explorer_user

pytestmark = pytest.mark.django_db

DROP = {"op": "policy", "table": "inet istio-proxy-mangle", "chain": "prerouting", "value": "drop"}


def test_the_form_adds_an_nft_rule_edit_and_the_verdicts_are_diffed() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/whatif/"
    form = {
        "add": "1",
        "op": "delete",
        "backend": "nft",
        "table": "inet istio-proxy-mangle",
        "chain": "istio-tproxy",
        "index": "1",
        "rule": "ignored for delete",
    }
    redirect = client.get(url, form)
    assert redirect.status_code == 302
    edits = json.loads(parse_qs(urlparse(redirect["Location"]).query)["edits"][0])
    assert edits == [
        {"op": "delete", "backend": "nft", "table": "inet istio-proxy-mangle", "chain": "istio-tproxy", "index": 1}
    ]
    result = client.get(url, {"edits": json.dumps(edits), "format": "json"}).json()
    assert result["ok"] and result["changed"] >= 1
    # without the TPROXY rule the SYN reaches the application directly: the same client IP, but not through Envoy
    assert result["diff"][0]["changed"] and "intercepted" in result["diff"][0]["changed_fields"]
    assert (
        "--- a/nft-ruleset" in result["patch"]
        and "-\t\tmeta l4proto tcp ip daddr != 127.0.0.1 tproxy" in result["patch"]
    )
    page = client.get(url, {"edits": json.dumps(edits)}).content.decode()
    assert "delete nft inet istio-proxy-mangle/istio-tproxy #1" in page and "changed" in page


def test_the_policy_form_field_and_element_edits() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/whatif/"
    redirect = client.get(
        url, {"add": "1", "op": "policy", "table": "inet istio-proxy-mangle", "chain": "prerouting", "policy": "drop"}
    )
    [edit] = json.loads(parse_qs(urlparse(redirect["Location"]).query)["edits"][0])
    assert edit == DROP
    result = client.get(url, {"edits": json.dumps([edit]), "format": "json"}).json()
    assert result["changes"] == ["nft inet istio-proxy-mangle/prerouting: policy accept -> drop"]
    assert result["diff"][0]["changed"] and "UPSTREAM_CONNECT_FAILURE" in result["diff"][0]["after"]


def test_a_bad_nft_rule_is_400_with_the_edit_and_column() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    rule = "tcp dport 22 jump nowhere"
    bad = {"op": "insert", "backend": "nft", "table": "inet istio-proxy-nat", "chain": "output", "rule": rule}
    response = client.get(f"/a/{analysis.slug}/whatif/", {"edits": json.dumps([DROP, bad]), "format": "json"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["source"], error["line"], error["column"], error["text"]) == (
        "edit 2",
        1,
        rule.index("nowhere") + 1,
        rule,
    )
    api = client.post(
        f"/api/v1/analyses/{analysis.slug}/what-ifs/", {"edits": [DROP, bad]}, content_type="application/json"
    )
    assert api.status_code == 400 and api.json()["errors"] == response.json()["errors"]


def test_the_api_applies_nft_edits_and_saving_keeps_the_nft_rules() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    api = client.post(f"/api/v1/analyses/{analysis.slug}/what-ifs/", {"edits": [DROP]}, content_type="application/json")
    assert api.status_code == 200 and api.json()["changed"] >= 1
    saved = client.post(f"/a/{analysis.slug}/whatif/save/", {"edits": json.dumps([DROP])})
    assert saved.status_code == 302
    copy = Analysis.objects.exclude(pk=analysis.pk).get(derived_from=analysis)
    assert "type filter hook prerouting priority mangle; policy drop;" in copy.nftables
    assert "set the policy of nft inet istio-proxy-mangle/prerouting to drop" in copy.origin_notes[0]
