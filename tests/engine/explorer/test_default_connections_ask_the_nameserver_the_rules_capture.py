"""A pod whose rules capture DNS (Istio's ISTIO_META_DNS_CAPTURE) gets a default DNS query among its default
connections: to the first nameserver a capturing rule names, else (capture-all) kube-dns's conventional ClusterIP;
a pod whose rules capture no DNS gets none. The default query is one the DNS proxy answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.engine.explorer.whatif import DEFAULT_DNS_SERVER_V4, default_connections, dns_query_destination
from meshviz.engine.pipeline.evidence import Evidence, connection_story

FIX = Path(__file__).resolve().parents[2] / "fixtures"
IPT = FIX / "corpus" / "istio-iptables"
DNS_GOLDENS = {
    "iptables": (IPT / "dns-uid-gid.golden").read_text(),
    "nftables": (FIX / "istio-nftables" / "capture" / "dns-uid-gid.golden").read_text(),
}


def evidence(backend: str, text: str) -> Evidence:
    if backend == "iptables":
        return Evidence(iptables=text, pod_ip="10.0.0.10")
    return Evidence(iptables="", nftables=text, pod_ip="10.0.0.10")


@pytest.mark.parametrize("backend", DNS_GOLDENS)
def test_the_default_dns_query_goes_to_the_nameserver_the_capture_rule_names(backend: str) -> None:
    ev = evidence(backend, DNS_GOLDENS[backend])
    conns = default_connections(ev)
    assert conns[-1] == {"direction": "udp", "dst": "127.0.0.53:53", "app_uid": 1000, "app_gid": 1000}


@pytest.mark.parametrize("backend", DNS_GOLDENS)
def test_the_default_dns_query_is_answered_by_the_dns_proxy(backend: str) -> None:
    ev = evidence(backend, DNS_GOLDENS[backend])
    story = connection_story(ev, default_connections(ev)[-1])
    verdict = story.verdict.to_dict()
    assert verdict["intercepted"] is True
    assert verdict["received_by"] == "dns-proxy"
    assert verdict["reply_source"] == "127.0.0.53:53"


def test_capture_all_dns_asks_kube_dns_conventional_cluster_ip() -> None:
    text = (FIX / "corpus" / "istio-cni" / "default.golden").read_text()
    assert "-j REDIRECT --to-port 15053" in text and "--dport 53 -d" not in text
    assert dns_query_destination(Evidence(iptables=text, pod_ip="10.0.0.10")) == DEFAULT_DNS_SERVER_V4


def test_rules_without_dns_capture_get_no_default_dns_query() -> None:
    text = (IPT / "drop-invalid.golden").read_text()
    ev = Evidence(iptables=text, pod_ip="10.0.0.10")
    assert dns_query_destination(ev) is None
    assert [c["direction"] for c in default_connections(ev)] == ["inbound", "outbound"]


def test_a_tcp_only_dns_redirect_is_not_a_udp_capture() -> None:
    text = "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport 53 -j REDIRECT --to-ports 15053\nCOMMIT\n"
    assert dns_query_destination(Evidence(iptables=text, pod_ip="10.0.0.10")) is None
