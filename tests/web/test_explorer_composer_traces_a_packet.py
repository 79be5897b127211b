"""The packet composer traces a packet through the pod from each entry point: received on eth0, sent by a local
process with its uid/gid, sent by Envoy; the page renders the same trace the JSON answers."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_a_received_syn_is_handed_to_envoy_by_tproxy() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/compose/"
    query = {
        "entry": "iface",
        "iface": "eth0",
        "src": "10.1.1.1",
        "sport": "40000",
        "dst": "172.16.188.31",
        "dport": "8083",
    }
    data = client.get(url, {**query, "format": "json"}).json()
    assert data["packet"] == "tcp 10.1.1.1:40000 -> 172.16.188.31:8083"
    [trace] = data["traces"]
    assert trace["disposition"] == "ACCEPTED_TO_SOCKET"
    assert "virtualInbound" in trace["socket"]
    tproxy = [s for s in trace["steps"] if s["kind"] == "RuleMatch" and "TPROXY" in (s.get("rule") or "")]
    assert tproxy and tproxy[0]["url"].startswith(f"/a/{analysis.slug}/rules/mangle/")
    assert tproxy[0]["node"] == f"rule:mangle:{tproxy[0]['chain']}:{tproxy[0]['index']}"
    assert {"table": "mangle", "chain": tproxy[0]["chain"], "index": tproxy[0]["index"]} in data["rules_hit"]

    # the page (the URL holds the packet) shows the same verdict and steps, and the structure graph
    page = client.get(url, query).content.decode()
    assert "ACCEPTED_TO_SOCKET" in page and "virtualInbound" in page
    assert page.count('<li class="step ') == len(trace["steps"])
    assert '<g id="hook:PREROUTING" class="node">' in page
    fragment = client.get(url, {**query, "fragment": "1"}).content.decode()
    assert "<html" not in fragment and "ACCEPTED_TO_SOCKET" in fragment


def test_the_verdict_changes_with_the_port_and_the_entry_point() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/compose/"
    base = {"src": "10.1.1.1", "sport": "40000", "dst": "172.16.188.31", "format": "json"}
    intercepted = client.get(url, {**base, "dport": "8083"}).json()["traces"][0]
    health = client.get(url, {**base, "dport": "15021"}).json()["traces"][0]  # Istio excludes 15021 from capture
    assert intercepted["socket"] != health["socket"]
    assert not any("TPROXY" in (s.get("rule") or "") for s in health["steps"])

    # the application (uid 1000) dialling out is redirected to Envoy's outbound listener by nat OUTPUT
    local = client.get(
        url,
        {"entry": "local", "uid": "1000", "gid": "1000", "src": "172.16.188.31", "sport": "50000",
         "dst": "203.0.113.10", "dport": "443", "format": "json"},
    ).json()  # fmt: skip
    assert local["entry_label"].endswith("(uid 1000, gid 1000)")
    steps = local["traces"][0]["steps"]
    assert any(s["kind"] == "RuleMatch" and s.get("chain") == "ISTIO_REDIRECT" for s in steps)
    # the same packet sent by Envoy (uid 0 / gid 1337 in this TPROXY pod) is not captured again
    envoy = client.get(
        url,
        {**{k: v for k, v in local["params"].items() if k not in ("uid", "gid")}, "entry": "envoy", "format": "json"},
    ).json()
    assert envoy["entry_label"].endswith("(uid 0, gid 1337)")
    assert not any(s.get("chain") == "ISTIO_REDIRECT" for s in envoy["traces"][0]["steps"])
