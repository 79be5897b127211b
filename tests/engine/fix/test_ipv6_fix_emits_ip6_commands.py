"""An IPv6 client of a TPROXY pod whose IPv6 policy route is missing: the fix is `ip -6 rule` / `ip -6 route` with
the pod's own mark (and Istio's table, assumed, when no rule names one), verified by re-simulation, and `patched` carries them in ip6_rule / ip6_route."""

from __future__ import annotations

import json
from pathlib import Path

from meshviz.engine.core.model import Family
from meshviz.engine.fix.plans import fix
from meshviz.engine.istio.generator import generate
from meshviz.engine.istio.settings import CaptureSettings, InterceptionMode
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.evidence import Evidence

POD6 = "fd00:80::10"
ROUTES6 = f"""fd00:80::/64 dev net1 proto kernel metric 256 pref medium
default via fd00:80::1 dev net1 metric 1024 pref medium
local ::1 dev lo table local proto kernel metric 0 pref medium
local ::6 dev lo table local proto kernel metric 0 pref medium
local {POD6} dev net1 table local proto kernel metric 0 pref medium
"""
DUMP = Path(__file__).resolve().parents[2] / "fixtures/envoy/tproxy-original-src.json"


def _evidence() -> Evidence:
    settings = CaptureSettings(
        interception_mode=InterceptionMode.TPROXY,
        enable_ipv6=True,
        inbound_tproxy_mark=0x100,
        inbound_tproxy_route_table=200,
        inbound_ports_include="*",
    )
    g = generate(settings)
    v6 = "".join(render_ruleset(rs) for rs in g.rulesets if rs.family == Family.IPV6)
    dump = json.loads(DUMP.read_text())
    # the same sidecar on an IPv6 pod: its listeners bind [::], original_src carries the pod's mark
    text = json.dumps(dump).replace('"mark": 1337', '"mark": 256').replace('"address": "0.0.0.0"', '"address": "::"')
    return Evidence(iptables="", ip6tables=v6, ip6_route=ROUTES6, pod_ip=POD6, envoy=text, app_ports=(8083,))


def test_ipv6_client_gets_ip6_policy_route_with_the_pods_mark_and_table() -> None:
    r = fix(_evidence(), client="[fd00:80::1]:40000", port=8083)
    out = r.to_dict()
    assert r.before["failure"] == "REPLY_ESCAPES_VIA_net1", r.before
    assert r.works, out["tried"]
    commands = [a["content"] for p in out["patches"] for a in p["artifacts"] if a["kind"] == "ip"]
    # The mark is the rules' (TPROXY --tproxy-mark 0x100); no ip rule names a table for it, so the repair uses
    # Istio's table 133 - and says it assumed so.
    assert "ip -6 rule add fwmark 256 lookup 133" in commands
    assert "ip -6 route add local ::/0 dev lo table 133" in commands
    assert any("fwmark 0x100 lookup 133" in c for c in out["patched"]["ip6_rule"])
    assert any(c.startswith("-6 route replace local default dev lo table 133") for c in out["patched"]["ip6_route"])
    assert out["patched"]["ip_rule"] == []
    assert r.after is not None and r.after["app_peer_ip"] == "fd00:80::1"
