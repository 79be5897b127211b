"""nft evidence for the explorer's engine tests: Istio's TPROXY capture as nft lists it, kube-proxy's nftables mode
as an `nft -f` script (../shared/bench/gen_kube_proxy_nft.py's shape) and as a listing."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.pipeline.evidence import Evidence

LISTED = Path(__file__).resolve().parents[2] / "fixtures" / "nftables-listed"
TPROXY_LIST = (LISTED / "capture-tproxy.list").read_text()
TPROXY_HANDLES = (LISTED / "capture-tproxy.handles").read_text()
KUBE_PROXY_LIST = (LISTED / "kube-proxy-20-services.nft-list").read_text()
IPTABLES_NFT_LIST = (LISTED / "iptables-nft-tproxy.nft-list").read_text()
IPTABLES_NFT_RESTORE = (LISTED / "iptables-nft-tproxy.restore").read_text()

KUBE_PROXY_SCRIPT = """\
add table ip kube-proxy
add set ip kube-proxy cluster-ips { type ipv4_addr ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy masquerading
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy masquerading meta mark & 0x00004000 == 0 return
add rule ip kube-proxy masquerading masquerade fully-random
add chain ip kube-proxy endpoint-a
add rule ip kube-proxy endpoint-a meta l4proto tcp dnat to 10.0.0.2:8080
add element ip kube-proxy cluster-ips { 172.16.0.10 }
add element ip kube-proxy service-ips { 172.16.0.10 . tcp . 80 : goto endpoint-a }
"""

INBOUND = {"direction": "inbound", "client": "10.1.1.1:40000", "port": 8080}
OUTBOUND = {"direction": "outbound", "dst": "172.16.0.10:80", "app_uid": 1000, "app_gid": 1000}


def nft_evidence(nftables: str, iptables: str = "") -> Evidence:
    return Evidence(iptables=iptables, pod_ip="10.0.0.10", nftables=nftables)
