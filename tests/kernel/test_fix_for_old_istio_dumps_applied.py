"""The fix for the real Istio 1.3 and 1.4 sidecar dumps (Envoy dials the application on 127.0.0.1), applied to a
real kernel, delivers the client's address to the application.

The broken pod is Istio's REDIRECT rules with a stand-in sidecar configured exactly as the corpus dump says (its
inbound cluster dials 127.0.0.1:9080): the application sees 127.0.0.1.  `fix` must find a plan whose
re-simulation reaches the goal (the mode switch alone does not: the application would answer from 127.0.0.1 to
the client's address, which the kernel will not route out of eth0).  A fresh pod is then built from the
patched evidence alone - rules, every `ip rule`/`ip route` command, sysctls, and a sidecar configured from the
patched dump through the engine's own Envoy matching - and a real request must reach the application with the
client's address.
"""

from __future__ import annotations

import json

import pytest

from meshviz.engine.fix.plans import fix
from meshviz.engine.pipeline.evidence import Evidence

from .conformance import SYSCTL_KEYS, fixture, to_kernel_text
from .conftest import require_netns
from .netns import CLIENT_IP, POD_IP, PodNet
from .test_fix_applied import sidecar_from_envoy

pytestmark = pytest.mark.kernel

REDIRECT = fixture("corpus/istio-cni/plugin/basic.txt.golden")
PORT = 9080
#: the corpus dumps, and the pod IP each was taken from (mapped to the test pod's address, which the filter chains'
#: prefix ranges and the node id then name)
DUMPS = {
    "envoy/istio-1.3-sidecar-productpage-bookinfo.json": "172.30.150.216",
    "envoy/istio-1.4-sidecar-productpage.json": "172.30.144.174",
}


@pytest.mark.parametrize("dump_path", list(DUMPS))
def test_the_fix_for_an_old_istio_dump_delivers_the_client_ip_in_the_kernel(dump_path: str) -> None:
    require_netns("legacy")
    dump_text = fixture(dump_path).replace(DUMPS[dump_path], POD_IP)
    tls = "1.4" in dump_path  # the 1.4 pod requires mTLS: its clients are meshed
    with PodNet("legacy") as net:
        net.load_iptables(to_kernel_text(REDIRECT), backend="legacy")
        net.listen("app", PORT, uid=1000, gid=1000)
        net.sidecar(
            uid=1337,
            gid=1337,
            orig_dst="so_original_dst",
            upstream_timeout=1.0,
            **sidecar_from_envoy(json.loads(dump_text), PORT, tls),
        )
        broken = net.request_from_client(POD_IP, PORT, timeout=3.0)
        ev = Evidence(
            iptables=net.iptables_save(backend="legacy"),
            pod_ip=POD_IP,
            ip_rule=net.ip_rule_list(),
            ip_route=net.ip_route_show_all(),
            sysctl=net.sysctl_snapshot(SYSCTL_KEYS),
            envoy=dump_text,
            app_ports=(PORT,),
        )
    assert broken.ok and broken.app_peer is not None and broken.app_peer[0] == "127.0.0.1", broken
    result = fix(ev, client=f"{CLIENT_IP}:40000", port=PORT)
    out = result.to_dict()
    assert result.works, out["tried"]
    assert out["tried"][0]["works"] is False, "switching the mode alone must not be offered as the fix"
    patched = out["patched"]
    with PodNet("legacy") as net:
        for key, value in patched["sysctl"].items():
            if key in SYSCTL_KEYS:
                net.sysctl(key, value)
        for cmd in patched["ip_rule"] + patched["ip_route"]:
            net.ip(*cmd.split())
        net.load_iptables(patched["iptables_save"], backend="legacy")
        net.listen("app", PORT, uid=1000, gid=1000)
        tproxy = "-j TPROXY" in patched["iptables_save"]
        net.sidecar(
            uid=patched["proxy_uid"] if patched["proxy_uid"] is not None else 0,
            gid=patched["proxy_gid"] if patched["proxy_gid"] is not None else 1337,
            orig_dst="getsockname" if tproxy else "so_original_dst",
            upstream_timeout=1.0,
            **sidecar_from_envoy(patched["envoy_config_dump"], PORT, tls),
        )
        fixed = net.request_from_client(POD_IP, PORT, timeout=3.0)
    assert fixed.ok and fixed.app_peer is not None, fixed
    assert fixed.app_peer[0] == CLIENT_IP, fixed
