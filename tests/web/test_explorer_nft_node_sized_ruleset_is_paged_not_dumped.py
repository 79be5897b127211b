"""A node's kube-proxy ruleset in nftables mode (thousands of service and endpoint chains, a verdict map with an
element per service) gives a rule table of one page, a chain drop-down of the chains a connection hit, and a structure
page that lists every base chain but counts the regular chains and the map's elements beyond its caps."""

from __future__ import annotations

import pytest

from meshviz.analyses import services
from meshviz.web.explorer_rules import MAX_CHAIN_CHOICES, PER_PAGE
from tests.web.explorer_support import client_for, explorer_user

pytestmark = pytest.mark.django_db

SERVICES = 1500


def kube_proxy_script(services_count: int) -> str:
    """kube-proxy's nftables mode as `nft -f` commands (the shape of ../shared/bench/gen_kube_proxy_nft.py)."""
    out = [
        "add table ip kube-proxy",
        "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }",
        "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }",
        "add chain ip kube-proxy services",
        "add rule ip kube-proxy nat-output jump services",
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
    ]
    for n in range(services_count):
        svc = f"service-{n:08d}-ns/svc{n}/tcp/http"
        vip = f"172.16.{n // 250}.{n % 250 + 1}"
        out.append(f"add chain ip kube-proxy {svc}")
        ends = []
        for e in range(2):
            ep = f"endpoint-{n:08d}{e}-ns/svc{n}/tcp/http__10.1.{n // 250}.{n % 250}/8080"
            out.append(f"add chain ip kube-proxy {ep}")
            out.append(f"add rule ip kube-proxy {ep} meta l4proto tcp dnat to 10.1.{n // 250}.{n % 250}:8080")
            ends.append(f"{e} : goto {ep}")
        out.append(f"add rule ip kube-proxy {svc} numgen random mod 2 vmap {{ {', '.join(ends)} }}")
        out.append(f"add element ip kube-proxy service-ips {{ {vip} . tcp . 80 : goto {svc} }}")
    return "\n".join(out) + "\n"


def test_the_rule_table_and_structure_stay_small() -> None:
    user = explorer_user()
    client = client_for(user)
    analysis = services.create_analysis(
        iptables="", nftables=kube_proxy_script(SERVICES), pod_ip="10.0.0.10", owner=user
    )
    url = f"/a/{analysis.slug}/rules/"
    data = client.get(url, {"format": "json"}).json()
    assert data["total"] == 2 + 3 * SERVICES and len(data["rules"]) == PER_PAGE
    page = client.get(url)
    assert page.status_code == 200 and len(page.content) < 400_000
    assert page.content.decode().count("<option") < MAX_CHAIN_CHOICES + 50  # not one option per chain
    found = client.get(url, {"format": "json", "q": f"svc{SERVICES - 1}/"}).json()
    assert found["matched"] == 3
    structure = client.get(f"/a/{analysis.slug}/structure/", {"format": "json"}).json()["nftables"]
    [table] = structure["tables"]
    assert len(table["chains"]) <= 102 and table["more_chains"] > 4000
    [service_ips] = table["sets"]
    assert service_ips["count"] == SERVICES and len(service_ips["elements"]) == 200
    html = client.get(f"/a/{analysis.slug}/structure/")
    assert html.status_code == 200 and len(html.content) < 400_000
