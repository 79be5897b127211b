"""A generated fix, applied to a real kernel, really delivers the client IP to the application.

Each case builds a broken TPROXY pod (Istio's rules, a stand-in sidecar configured
like the given Envoy config), asks `fix(..., goal="preserve-client-ip")` for a
patch from the pod's own evidence, then builds a fresh pod from the *patched*
evidence alone - `patched.iptables_save` loaded with iptables-restore, the
`ip_rule`/`ip_route` commands run, the sidecar configured from the patched
Envoy config dump through the engine's own Envoy matching - and checks that a
real client request now reaches the application with the client's address.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from meshviz.engine.envoy.clusters import cluster_for
from meshviz.engine.envoy.filter_chains import ConnInfo, select_filter_chain
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.envoy.patch import patch_dump
from meshviz.engine.envoy.upstream import upstream_binding, upstream_target
from meshviz.engine.fix.plans import fix
from meshviz.engine.pipeline.evidence import Evidence

from .conformance import SYSCTL_KEYS, TPROXY_ROUTES, fixture, to_kernel_text
from .conftest import require_netns
from .netns import CLIENT_IP, POD_IP, PodNet
from .test_story_e2e import Sidecar

pytestmark = pytest.mark.kernel

TPROXY = fixture("corpus/istio-cni/plugin/tproxy.txt.golden")
NO_RESTORE = "\n".join(line for line in TPROXY.splitlines() if "--restore-mark" not in line) + "\n"
GOOD_SIDECAR = Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337)

REDIRECT = fixture("corpus/istio-cni/plugin/basic.txt.golden")
TPROXY_15001 = TPROXY.replace("--on-port 15006", "--on-port 15001")

CASES = [
    (
        "default REDIRECT (app sees 127.0.0.6): the fix switches the pod to TPROXY",
        REDIRECT,
        Sidecar(bind="127.0.0.6").envoy_json("REDIRECT"),
        (),
    ),
    (
        "Istio 1.6 TPROXY shape (Envoy dials the pod IP unbound and loops): the fix adds original_src",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname").envoy_json("TPROXY"),
        TPROXY_ROUTES,
    ),
    (
        "Istio 1.5 TPROXY shape (15001, dials 127.0.0.1): the fix adds original_src",
        TPROXY_15001,
        Sidecar(
            port=15001, transparent=True, uid=0, gid=1337, orig_dst="getsockname", target="127.0.0.1:8080"
        ).envoy_json("TPROXY"),
        TPROXY_ROUTES,
    ),
    (
        "original_src without a mark: the fix is an EnvoyFilter setting mark 1337",
        TPROXY,
        patch_dump(GOOD_SIDECAR.envoy_json("TPROXY"), original_src=(("virtualInbound",), 0)).text,
        TPROXY_ROUTES,
    ),
    (
        "no policy route: the fix adds ip rule fwmark 1337 lookup 133 and the local default route",
        TPROXY,
        GOOD_SIDECAR.envoy_json("TPROXY"),
        (),
    ),
    (
        "no CONNMARK --restore-mark: the fix adds the mangle OUTPUT rule",
        NO_RESTORE,
        GOOD_SIDECAR.envoy_json("TPROXY"),
        TPROXY_ROUTES,
    ),
    (
        "no original_src at all: the fix inserts it after original_dst",
        TPROXY,
        patch_dump(GOOD_SIDECAR.envoy_json("TPROXY"), original_src=(("virtualInbound",), None)).text,
        TPROXY_ROUTES,
    ),
]


def sidecar_from_envoy(dump: dict[str, Any], port: int = 8080, tls: bool = False) -> dict[str, Any]:
    """Configure the stand-in exactly as the engine reads the (patched) Envoy config for a client of `port`
    (speaking mTLS when `tls`, as a meshed client does)."""
    cfg = parse_config_dump(json.dumps(dump)).config
    lst = next(x for x in cfg.listeners if x.name == "virtualInbound" and x.state == "active")
    client = ipaddress.ip_address(CLIENT_IP)
    pod = ipaddress.ip_address(POD_IP)
    info = ConnInfo(
        dst_ip=pod,
        dst_port=port,
        src_ip=client,
        src_port=40000,
        direct_src_ip=client,
        transport_protocol="tls" if tls else "raw_buffer",
    )
    sel = select_filter_chain(lst, info)
    assert sel.chain is not None
    cs = cluster_for(sel.chain, host=str(pod), path="/", config=cfg)
    assert cs.cluster is not None
    ub = upstream_binding(cfg, lst, cs.cluster, client, chain=sel.chain)
    target = upstream_target(cs.cluster, (pod, port)).as_tuple()
    assert target is not None
    bind: str | None
    if ub.bind_ip == client:
        bind = "downstream_src"
    else:
        bind = str(ub.bind_ip) if ub.bind_ip else None
    return {
        "port": lst.address.port if lst.address else 15006,
        "transparent": bool(lst.transparent),
        "upstream_target": "original_dst" if cs.cluster.type == "ORIGINAL_DST" else f"{target[0]}:{target[1]}",
        "upstream_bind": bind,
        "upstream_transparent": ub.transparent,
        "upstream_mark": ub.mark,
    }


def build_pod(
    net: PodNet, iptables: str, envoy_dump: dict[str, Any], ip_cmds: list[list[str]], uid: int, gid: int, orig_dst: str
) -> None:
    for cmd in ip_cmds:
        net.ip(*cmd)
    net.load_iptables(iptables, backend="legacy")
    net.listen("app:8080", 8080, uid=1000, gid=1000)
    sc = sidecar_from_envoy(envoy_dump)
    net.sidecar(uid=uid, gid=gid, orig_dst=orig_dst, upstream_timeout=1.0, **sc)


@pytest.mark.parametrize(("name", "rules", "envoy", "routes"), CASES, ids=[c[0] for c in CASES])
def test_patched_evidence_delivers_the_client_ip_in_the_kernel(
    name: str, rules: str, envoy: str, routes: tuple[tuple[str, ...], ...]
) -> None:
    require_netns("legacy")
    # 1. The broken pod, and its evidence as a user would collect it.
    with PodNet("legacy") as net:
        redirect = "TPROXY" not in rules
        uid, orig = (1337, "so_original_dst") if redirect else (0, "getsockname")
        build_pod(net, to_kernel_text(rules), json.loads(envoy), [list(c) for c in routes], uid, 1337, orig)
        broken = net.request_from_client(POD_IP, 8080, timeout=3.0)
        ev = Evidence(
            iptables=net.iptables_save(backend="legacy"),
            pod_ip=POD_IP,
            ip_rule=net.ip_rule_list(),
            ip_route=net.ip_route_show_all(),
            sysctl=net.sysctl_snapshot(SYSCTL_KEYS),
            envoy=envoy,
            proxy_uid=0,
            proxy_gid=1337,
            app_ports=(8080,),
        )
    assert not (broken.ok and broken.app_peer and broken.app_peer[0] == CLIENT_IP), "the pod was not broken"
    result = fix(ev, client=f"{CLIENT_IP}:40000", port=8080)
    assert result.works, result.to_dict()
    patched = result.to_dict()["patched"]
    # 2. A fresh pod built from the patched evidence alone.
    with PodNet("legacy") as net:
        # `patched` is complete: its rules and routes alone (no replay of the original pod's) rebuild the pod.
        ip_cmds = [c.split() for c in patched["ip_rule"] + patched["ip_route"]]
        for key, value in patched["sysctl"].items():
            if key in SYSCTL_KEYS:
                net.sysctl(key, value)
        build_pod(
            net,
            patched["iptables_save"],
            patched["envoy_config_dump"],
            ip_cmds,
            patched["proxy_uid"] if patched["proxy_uid"] is not None else 0,
            patched["proxy_gid"] if patched["proxy_gid"] is not None else 1337,
            "getsockname" if "-j TPROXY" in patched["iptables_save"] else "so_original_dst",
        )
        fixed = net.request_from_client(POD_IP, 8080, timeout=3.0)
    assert fixed.ok and fixed.app_peer is not None, fixed
    assert fixed.app_peer[0] == CLIENT_IP, fixed
