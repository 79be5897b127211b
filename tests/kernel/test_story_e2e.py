"""`story` predicts what the application sees, end to end, as the kernel really delivers it.

Each case builds a pod for real: Istio's REDIRECT or TPROXY rules (the istio-cni
plugin goldens), optional policy routes and sysctls, an application listener
and a stand-in sidecar configured the way Envoy would be (where it listens,
how it finds the original destination, what it dials, what it binds to, its
SO_MARK).  A client request goes through it.  The engine gets only what a user
would upload - the pod's iptables-save, ip rule, ip route, sysctl output and
an Envoy config dump describing that sidecar - and its verdict must match what
happened: connected or not, intercepted or not, the peer address the
application saw, a loop, or an upstream connect failure (Envoy's 503 UF).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshviz.engine.pipeline.pod import run_story

from .conformance import SYSCTL_KEYS, TPROXY_ROUTES, fixture, to_kernel_text
from .conftest import require_netns
from .fuzz import CLIENT_SPORT, kernel_verdict, observable, observe
from .netns import CLIENT_IP, POD_IP, E2EResult, PodNet

pytestmark = pytest.mark.kernel

REDIRECT = fixture("corpus/istio-cni/plugin/basic.txt.golden")
TPROXY = fixture("corpus/istio-cni/plugin/tproxy.txt.golden")
# Istio 1.5 sent inbound TPROXY traffic to the 15001 listener.
TPROXY_15001 = TPROXY.replace("--on-port 15006", "--on-port 15001")


@dataclass(frozen=True)
class Sidecar:
    """How the stand-in sidecar behaves, and the Envoy config that describes the same behaviour."""

    port: int = 15006
    transparent: bool = False
    uid: int = 1337
    gid: int = 1337
    orig_dst: str = "so_original_dst"
    target: str = "original_dst"  # or "127.0.0.1:8080"
    bind: str | None = None  # None | "127.0.0.6" | "downstream_src"
    mark: int = 0

    def envoy_json(self, mode: str) -> str:
        filters: list[dict[str, Any]] = [
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                },
            }
        ]
        if self.bind == "downstream_src":
            src: dict[str, Any] = {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
            }
            if self.mark:
                src["mark"] = self.mark
            filters.append({"name": "envoy.filters.listener.original_src", "typed_config": src})
        listener = {
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "virtualInbound",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": self.port}},
            "listener_filters": filters,
            "filter_chains": [
                {
                    "name": "inbound|8080||",
                    "filters": [
                        {
                            "name": "envoy.filters.network.tcp_proxy",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                "stat_prefix": "inbound",
                                "cluster": "inbound|8080||",
                            },
                        }
                    ],
                }
            ],
        }
        if self.transparent:
            listener["transparent"] = True
        cluster: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "inbound|8080||",
        }
        if self.target == "original_dst":
            cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})
        else:
            host, _, port = self.target.partition(":")
            cluster.update(
                {
                    "type": "STATIC",
                    "load_assignment": {
                        "cluster_name": "inbound|8080||",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {"socket_address": {"address": host, "port_value": int(port)}}
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            )
        if self.bind == "127.0.0.6":
            cluster["upstream_bind_config"] = {"source_address": {"address": "127.0.0.6", "port_value": 0}}
        dump = {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                    "bootstrap": {
                        "node": {
                            "id": f"sidecar~{POD_IP}~app.default~default.svc.cluster.local",
                            "metadata": {"INTERCEPTION_MODE": mode},
                        }
                    },
                },
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                    "dynamic_listeners": [{"name": "virtualInbound", "active_state": {"listener": listener}}],
                },
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                    "dynamic_active_clusters": [{"cluster": cluster}],
                },
            ]
        }
        return json.dumps(dump, indent=1)


REDIRECT_SIDECAR = Sidecar()
TPROXY_SIDECAR = Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname")


@dataclass(frozen=True)
class E2ECase:
    name: str
    rules: str
    sidecar: Sidecar | None
    mode: str = "REDIRECT"
    port: int = 8080
    ip: tuple[tuple[str, ...], ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    backend: str = "legacy"
    extra_app_ports: tuple[int, ...] = field(default=())
    expect: str = ""  # what the scenario shows: app:<ip> | loop | upstream_failure | refused | direct:<ip>


CASES = [
    E2ECase(
        "redirect >= 1.10: upstream bound to 127.0.0.6, the app sees 127.0.0.6",
        REDIRECT,
        Sidecar(bind="127.0.0.6"),
        expect="app:127.0.0.6",
    ),
    E2ECase(
        "redirect < 1.10: Envoy dials 127.0.0.1:8080, the app sees 127.0.0.1",
        REDIRECT,
        Sidecar(target="127.0.0.1:8080"),
        expect="app:127.0.0.1",
    ),
    E2ECase(
        "redirect: Envoy dials the pod IP with no bind and is redirected into itself",
        REDIRECT,
        Sidecar(),
        expect="loop",
    ),
    E2ECase(
        "redirect: excluded port 15020 reaches its listener directly with the client address",
        REDIRECT,
        Sidecar(bind="127.0.0.6"),
        port=15020,
        extra_app_ports=(15020,),
        expect=f"direct:{CLIENT_IP}",
    ),
    E2ECase(
        "redirect: excluded port 15021 bypasses the sidecar",
        REDIRECT,
        Sidecar(bind="127.0.0.6"),
        port=15021,
        extra_app_ports=(15021,),
        expect=f"direct:{CLIENT_IP}",
    ),
    E2ECase("redirect: no sidecar listening on 15006, the client is refused", REDIRECT, None, expect="refused"),
    E2ECase(
        "redirect (nft): upstream bound to 127.0.0.6, the app sees 127.0.0.6",
        REDIRECT,
        Sidecar(bind="127.0.0.6"),
        backend="nft",
        expect="app:127.0.0.6",
    ),
    E2ECase(
        "tproxy: original_src with mark 1337 and the policy route, the app sees the client",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect=f"app:{CLIENT_IP}",
    ),
    E2ECase(
        "tproxy: original_src without the policy route, the reply escapes and Envoy fails (503 UF)",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337),
        mode="TPROXY",
        expect="upstream_failure",
    ),
    E2ECase(
        "tproxy: original_src without a mark, the upstream SYN is re-captured and Envoy fails",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=0),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect="upstream_failure",
    ),
    E2ECase(
        "tproxy: upstream bound to 127.0.0.6, the app sees 127.0.0.6",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="127.0.0.6"),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect="app:127.0.0.6",
    ),
    E2ECase(
        "tproxy (Istio 1.6): Envoy dials the pod IP with no bind and loops into itself",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname"),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect="loop",
    ),
    E2ECase(
        "tproxy (Istio 1.5): TPROXY to 15001, Envoy dials 127.0.0.1:8080, the app sees 127.0.0.1",
        TPROXY_15001,
        Sidecar(port=15001, transparent=True, uid=0, gid=1337, orig_dst="getsockname", target="127.0.0.1:8080"),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect="app:127.0.0.1",
    ),
    E2ECase(
        "tproxy: excluded port 15020 bypasses the sidecar",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        port=15020,
        extra_app_ports=(15020,),
        expect=f"direct:{CLIENT_IP}",
    ),
    E2ECase(
        "tproxy (nft): original_src with mark 1337 and the policy route, the app sees the client",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        backend="nft",
        expect=f"app:{CLIENT_IP}",
    ),
    E2ECase(
        "tproxy with tcp_fwmark_accept=1: Envoy's SYN-ACK inherits mark 1337 and never reaches the client",
        TPROXY,
        Sidecar(transparent=True, uid=0, gid=1337, orig_dst="getsockname", bind="downstream_src", mark=1337),
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        sysctls=(("net.ipv4.tcp_fwmark_accept", "1"),),
        expect="refused",
    ),
    E2ECase(
        "tproxy: no sidecar on 15006, TPROXY finds no transparent socket and drops the SYN",
        TPROXY,
        None,
        mode="TPROXY",
        ip=TPROXY_ROUTES,
        expect="refused",
    ),
]


def kernel_class(r: E2EResult) -> str:
    if not r.client_connected:
        return "refused"
    if r.proxy_error == "LOOP":
        return "loop"
    if r.proxy_error in ("UF", "UC"):
        return "upstream_failure"
    if r.ok and r.app_peer is not None:
        return f"{'app' if r.via_proxy else 'direct'}:{r.app_peer[0]}"
    return f"unexplained:{r.response!r}/{r.read_error}"


def engine_class(verdict: dict[str, Any]) -> str:
    if not verdict["client_connected"]:
        return "refused"
    if verdict["loop"]:
        return "loop"
    failure = verdict["failure"] or ""
    if failure.startswith("REPLY_ESCAPES") or failure == "UPSTREAM_CONNECT_FAILURE":
        return "upstream_failure"
    if verdict["app_reached"] and not failure:
        return f"{'app' if verdict['intercepted'] else 'direct'}:{verdict['app_peer_ip']}"
    return f"unexplained:{verdict}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_story_matches_what_the_application_really_sees(case: E2ECase) -> None:
    require_netns(case.backend)  # type: ignore[arg-type]
    with PodNet(case.backend) as net:  # type: ignore[arg-type]
        for cmd in case.ip:
            net.ip(*cmd)
        for key, value in case.sysctls:
            net.sysctl(key, value)
        net.load_iptables(to_kernel_text(case.rules), backend=case.backend)  # type: ignore[arg-type]
        observe(net, case.port, [net.iface])
        apps = {p: net.listen(f"app:{p}", p, uid=1000, gid=1000) for p in (8080, *case.extra_app_ports)}
        sc = case.sidecar
        proc = None
        if sc is not None:
            proc = net.sidecar(
                port=sc.port,
                transparent=sc.transparent,
                uid=sc.uid,
                gid=sc.gid,
                orig_dst=sc.orig_dst,
                upstream_target=sc.target,
                upstream_bind=sc.bind,
                upstream_transparent=sc.bind == "downstream_src",
                upstream_mark=sc.mark,
                upstream_timeout=1.0,
            )
        got = net.request_from_client(POD_IP, case.port, sport=CLIENT_SPORT, timeout=3.0)
        kernel_full, raw = kernel_verdict(net, got, apps[case.port], proc, CLIENT_IP, [net.iface])
        envoy = (sc or Sidecar(port=1)).envoy_json(case.mode) if sc is not None else _no_listener_dump(case.mode)
        result = run_story(
            iptables=net.iptables_save(backend=case.backend),  # type: ignore[arg-type]
            ip_rule=net.ip_rule_list(),
            ip_route=net.ip_route_show_all(),
            sysctl=net.sysctl_snapshot(SYSCTL_KEYS),
            envoy=envoy,
            pod_ip=POD_IP,
            proxy_uid=sc.uid if sc else None,
            proxy_gid=sc.gid if sc else None,
            client=f"{CLIENT_IP}:{CLIENT_SPORT}",
            port=case.port,
            app_ports=(8080, *case.extra_app_ports),
        )
    assert not result.errors, result.errors
    assert result.story is not None
    kernel = kernel_class(got)
    engine = engine_class(result.story.verdict.to_dict())
    ctx = f"\nkernel: {got}\nengine: {json.dumps(result.story.to_dict()['verdict'])}\n{result.story.summary}"
    assert engine == kernel, ctx
    assert kernel == case.expect, "scenario no longer shows what it was written for" + ctx
    # Every verdict field, not only the class: what the kernel showed against what the engine says.
    assert observable(result.story.verdict.to_dict()) == kernel_full, (
        f"{ctx}\nkernel (all fields): {kernel_full}\n{raw}"
    )


def _no_listener_dump(mode: str) -> str:
    return json.dumps(
        {
            "configs": [
                {
                    "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                    "bootstrap": {
                        "node": {
                            "id": f"sidecar~{POD_IP}~app.default~default.svc.cluster.local",
                            "metadata": {"INTERCEPTION_MODE": mode},
                        }
                    },
                },
            ]
        }
    )


def test_there_are_at_least_fifteen_end_to_end_cases() -> None:
    assert len(CASES) >= 15
