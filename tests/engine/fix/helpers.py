"""Evidence for fix tests: Istio's TPROXY rules (CNI plugin golden) and a TPROXY sidecar dump."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.envoy.patch import patch_dump
from meshviz.engine.pipeline.evidence import Evidence

FIX = Path(__file__).resolve().parents[2] / "fixtures"
POD = "172.16.188.31"
CLIENT = "10.1.1.1:40000"
PORT = 8083
TPROXY_RULES = (FIX / "corpus/istio-cni/plugin/tproxy.txt.golden").read_text()
REDIRECT_RULES = (FIX / "corpus/istio-cni/plugin/basic.txt.golden").read_text()
ENVOY_TPROXY = (FIX / "envoy/tproxy-original-src.json").read_text()
IP_RULE = (
    "0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x539 lookup 133\n32766:\tfrom all lookup main\n"
    "32767:\tfrom all lookup default\n"
)
IP_RULE_NONE = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
IP_ROUTE_NONE = f"""default via 172.16.188.1 dev eth0
172.16.188.0/24 dev eth0 proto kernel scope link src {POD}
local {POD} dev eth0 table local proto kernel scope host src {POD}
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1
"""
IP_ROUTE = IP_ROUTE_NONE + "local default dev lo table 133 scope host\n"


def tproxy_evidence(**kw: object) -> Evidence:
    base: dict[str, object] = {
        "iptables": TPROXY_RULES,
        "pod_ip": POD,
        "ip_rule": IP_RULE,
        "ip_route": IP_ROUTE,
        "envoy": ENVOY_TPROXY,
        "labels": (("app", "geo"),),
        "namespace": "hr2",
    }
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def envoy_with_mark(mark: int | None) -> str:
    return patch_dump(ENVOY_TPROXY, original_src=(("virtualInbound",), mark)).text
