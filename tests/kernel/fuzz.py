"""A differential kernel fuzzer: random pods, built for real and simulated, whose full verdicts must agree.

A seeded generator draws a pod from the knobs that make real pods differ from our hand-written ones: the
interception mode and Istio's capture settings (inbound ports included or excluded, proxy uid/gid, the TPROXY
mark and route table), the pod's interface name and a second interface, IPv4 or IPv6, the iptables backend,
Envoy's upstream bind (127.0.0.6 / ::6, original_src with or without its mark, none) and target (the original
destination, loopback, the pod IP), the policy route (present, missing, half there, shadowed by another rule),
sysctls (tcp_fwmark_accept, route_localnet, rp_filter, src_valid_mark), the application's port and identity.

Each scenario runs twice:

* in the kernel: the rules (Istio's own, from the engine's generator, which reproduces Istio's goldens byte for
  byte) loaded with iptables-restore into a pod namespace, the policy routes and sysctls applied, a stand-in
  sidecar configured like that Envoy and an application that reports its peer; a client in another namespace
  makes a request.  What happened is observed: did the client connect, did the sidecar take the connection,
  did the application's accept() return and with which peer, a loop, and where a lost SYN-ACK went (counters);
* in the engine: `run_story` on the evidence a user would upload from that pod (iptables-save and
  ip6tables-save, ip rule / ip -6 rule, ip route / ip -6 route show table all, sometimes ip -o addr, sysctls,
  the Envoy config dump).  The proxy's uid/gid are *not* given: the engine must read them from the rules.

`compare` returns the fields that differ; the verdicts must be equal field by field.

    python -m tests.kernel.fuzz --n 1000 --seed 1        # or: make kernel-fuzz N=1000 SEED=1
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from meshviz.engine.core.model import Family
from meshviz.engine.istio.generator import generate
from meshviz.engine.istio.settings import CaptureSettings, InterceptionMode
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.pod import run_story

from .netns import CLIENT_IP, CLIENT_IP6, POD_IP, POD_IP6, PodNet

IFACES = ("eth0", "ens4", "net1", "vethab12cd")
UIDS = (1337, 1000730000, 2000)
GIDS = (1337, 1000730000, 3000)
MARKS = ((1337, 133), (0x100, 200), (1337, 133))
APP_PORTS = (8080, 9080, 5432)
CLIENT_SPORT = 40000
OTHER_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport {port} -j DROP
-A INPUT -m conntrack --ctstate INVALID -j DROP
COMMIT
"""
REQUEST_TIMEOUT = 2.0
UPSTREAM_TIMEOUT = 0.6


@dataclass(frozen=True)
class Scenario:
    seed: int
    family: str  # ipv4 | ipv6
    iface: str
    extra_iface: str | None
    backend: str  # legacy | nft
    mode: str  # REDIRECT | TPROXY
    proxy_uid: int  # the uid istio-iptables exempts (a TPROXY sidecar itself runs as root)
    proxy_gid: int
    mark: int
    table: int
    inbound: str  # all | app | other | exclude_app
    policy: str  # istio | none | rule_only | route_only | shadowed
    bind: str  # passthrough | original_src | original_src_nomark | none
    target: str  # original_dst | loopback | pod_ip
    sidecar: bool  # a sidecar listens at all
    app_port: int
    app_uid: int
    app_gid: int
    tcp_fwmark_accept: int
    route_localnet: int
    rp_filter: int
    src_valid_mark: int
    give_pod_ip: bool
    give_addr: bool
    flavour: str = "capture"  # capture (istio-init) | cni-plugin (the istio-cni plugin's rule shape)
    exclude_iface: bool = False  # istio-iptables --exclude-interfaces names the pod's interface
    other_backend: str = "none"  # none | filter: the other iptables backend holds a filter table too
    direction: str = "inbound"  # inbound: a client's request; outbound: the application calls a server outside
    native_nft: bool = False  # the rules are Istio's nftables backend's (its goldens, loaded with nft -f)

    @property
    def v6(self) -> bool:
        return self.family == "ipv6"

    @property
    def client_ip(self) -> str:
        return CLIENT_IP6 if self.v6 else CLIENT_IP

    @property
    def pod_ip(self) -> str:
        return POD_IP6 if self.v6 else POD_IP

    def label(self) -> str:
        return (
            f"#{self.seed} {self.family} {self.mode} {self.backend} iface={self.iface}"
            f"{'+' + self.extra_iface if self.extra_iface else ''} uid={self.proxy_uid}/{self.proxy_gid} "
            f"mark={self.mark:#x}/t{self.table} inbound={self.inbound} policy={self.policy} bind={self.bind} "
            f"target={self.target} sidecar={self.sidecar} app={self.app_port} fwmark_accept={self.tcp_fwmark_accept} "
            f"localnet={self.route_localnet} rp={self.rp_filter} svm={self.src_valid_mark} {self.flavour}"
            f"{' exclude-iface' if self.exclude_iface else ''}{' +other-backend' if self.other_backend != 'none' else ''}"
            f"{' OUTBOUND' if self.direction == 'outbound' else ''}{' NATIVE-NFT' if self.native_nft else ''}"
        )


def draw(seed: int) -> Scenario:
    rng = random.Random(seed)
    mode = rng.choice(("REDIRECT", "TPROXY", "TPROXY"))
    mark, table = rng.choice(MARKS)
    bind_choices = ("passthrough", "none") if mode == "REDIRECT" else ("original_src", "original_src", "passthrough")
    bind = rng.choice((*bind_choices, "original_src_nomark", "none")) if mode == "TPROXY" else rng.choice(bind_choices)
    return Scenario(
        seed=seed,
        family=rng.choice(("ipv4", "ipv4", "ipv6")),
        iface=rng.choice(IFACES),
        extra_iface=rng.choice((None, None, "net2")),
        backend=rng.choice(("legacy", "nft")),
        mode=mode,
        proxy_uid=rng.choice(UIDS),
        proxy_gid=rng.choice(GIDS),
        mark=mark,
        table=table,
        inbound=rng.choice(("all", "all", "app", "other", "exclude_app")),
        policy=rng.choice(("istio", "istio", "none", "rule_only", "route_only", "shadowed"))
        if mode == "TPROXY"
        else "none",
        bind=bind,
        target=rng.choice(("original_dst", "original_dst", "loopback", "pod_ip")),
        sidecar=rng.random() > 0.08,
        app_port=rng.choice(APP_PORTS),
        app_uid=rng.choice((1000, 0, 4000)),
        app_gid=rng.choice((1000, 4000)),
        tcp_fwmark_accept=rng.choice((0, 0, 1)),
        route_localnet=rng.choice((0, 0, 1)),
        rp_filter=rng.choice((0, 1, 2)),
        src_valid_mark=rng.choice((0, 1)),
        give_pod_ip=rng.random() > 0.3,
        give_addr=rng.random() > 0.5,
        flavour=rng.choice(("capture", "capture", "cni-plugin")),
        exclude_iface=rng.random() < 0.1,
        other_backend=rng.choice(("none", "none", "none", "filter")),
        direction=rng.choice(("inbound", "inbound", "inbound", "outbound")),
    )


def istio_nft_pod(
    mode: str,
    policy: bool,
    bind: str,
    *,
    sidecar: bool = True,
    app_port: int = 8080,
    app_uid: int = 1000,
    app_gid: int = 1000,
    direction: str = "inbound",
) -> Scenario:
    """A native-nftables pod with Istio's defaults (eth0, uid/gid 1337, mark 1337, table 133, every inbound port,
    the policy route when `policy`), no sysctl help: what the nft story and fix kernel tests start from."""
    return replace(
        draw(0),
        family="ipv4",
        iface="eth0",
        extra_iface=None,
        backend="nft",
        mode=mode,
        proxy_uid=1337,
        proxy_gid=1337,
        mark=1337,
        table=133,
        inbound="all",
        policy="istio" if policy else "none",
        bind=bind,
        target="original_dst",
        sidecar=sidecar,
        app_port=app_port,
        app_uid=app_uid,
        app_gid=app_gid,
        tcp_fwmark_accept=0,
        route_localnet=0,
        rp_filter=0,
        src_valid_mark=0,
        give_pod_ip=True,
        give_addr=True,
        direction=direction,
        exclude_iface=False,
        other_backend="none",
    )


def draw_nft(seed: int) -> Scenario:
    """A pod whose interception is Istio's nftables backend: one of its capture goldens (every inbound port, or
    only some other ports) for the drawn mode and family (`NFT_GOLDEN`), with the drawn uid, gid and mark
    written in; the capture flavour, no excluded interface, no other iptables backend."""
    s = draw(seed)
    rng = random.Random(seed ^ 0x6E6674)
    inbound = rng.choice(("all", "all", "other"))
    family = rng.choice(("ipv4", "ipv4", "ipv6"))
    if (s.mode, inbound, family) not in NFT_GOLDEN:
        family = "ipv4"
    return replace(
        s,
        family=family,
        native_nft=True,
        inbound=inbound,
        flavour="capture",
        exclude_iface=False,
        other_backend="none",
    )


NFT_GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "istio-nftables" / "capture"
#: (mode, inbound ports, family) -> the golden: all ports, or only others (32000,31000; IPv6: 4000,5000); the
#: IPv6 TPROXY golden (`tproxy`) also captures DNS and excludes an interface the pod does not have.
NFT_GOLDEN = {
    ("REDIRECT", "all", "ipv4"): "inbound-ports-wildcard",
    ("REDIRECT", "other", "ipv4"): "inbound-ports-include",
    ("TPROXY", "all", "ipv4"): "inbound-ports-wildcard-tproxy",
    ("TPROXY", "other", "ipv4"): "inbound-ports-tproxy",
    ("REDIRECT", "other", "ipv6"): "ipv6-inbound-ports",
    ("TPROXY", "all", "ipv6"): "tproxy",
}


def nft_rules(s: Scenario) -> str:
    """The Istio nftables golden for the scenario's mode and inbound ports, as `nft -f` input, with its proxy
    uid/gid and TPROXY mark (1337 in the goldens) replaced by the scenario's."""
    name = NFT_GOLDEN[(s.mode, s.inbound, s.family)]
    text = (NFT_GOLDENS / f"{name}.golden").read_text()
    # The owner ids first, as placeholders: the mark replaces every other 1337 (a gid of 1337 must stay 1337).
    text = re.sub(r"\bskuid (!= )?1337\b", lambda m: f"skuid {m.group(1) or ''}@UID@", text)
    text = re.sub(r"\bskgid (!= )?1337\b", lambda m: f"skgid {m.group(1) or ''}@GID@", text)
    text = re.sub(r"\b1337\b", str(s.mark), text)
    return text.replace("@UID@", str(s.proxy_uid)).replace("@GID@", str(s.proxy_gid))


# --------------------------------------------------------------------------
# What the pod is made of
# --------------------------------------------------------------------------


def capture_settings(s: Scenario) -> CaptureSettings:
    include: Any = "*"
    exclude: tuple[int, ...] = ()
    if s.inbound == "app":
        include = (s.app_port,)
    elif s.inbound == "other":
        include = (7777,)
    elif s.inbound == "exclude_app":
        exclude = (s.app_port,)
    return CaptureSettings(
        interception_mode=InterceptionMode(s.mode),
        proxy_uids=(str(s.proxy_uid),),
        proxy_gids=(str(s.proxy_gid),),
        inbound_ports_include=include,
        inbound_ports_exclude=exclude,
        inbound_tproxy_mark=s.mark,
        inbound_tproxy_route_table=s.table,
        enable_ipv6=s.v6,
        exclude_interfaces=(s.iface,) if s.exclude_iface else (),
    )


def rules(s: Scenario) -> tuple[str, str | None, list[list[str]]]:
    """iptables-restore text (IPv4, IPv6) and the `ip` commands of the scenario's policy routing."""
    g = generate(capture_settings(s), flavour=s.flavour)  # type: ignore[arg-type]
    assert not g.errors, g.errors
    v4 = "".join(render_ruleset(rs) for rs in g.rulesets if rs.family == Family.IPV4)
    v6 = "".join(render_ruleset(rs) for rs in g.rulesets if rs.family == Family.IPV6) or None
    fam = ["-6"] if s.v6 else []
    dflt = "::/0" if s.v6 else "default"
    rule = [*fam, "rule", "add", "fwmark", str(s.mark), "lookup", str(s.table)]
    route = [*fam, "route", "add", "local", dflt, "dev", "lo", "table", str(s.table)]
    ip: list[list[str]] = []
    if s.policy in ("istio", "rule_only", "shadowed"):
        ip.append(rule)
    if s.policy in ("istio", "route_only", "shadowed"):
        ip.append(route)
    if s.policy == "shadowed":  # a rule of higher priority sends the marked replies to main first
        ip.append([*fam, "rule", "add", "pref", "100", "fwmark", str(s.mark), "lookup", "main"])
    return v4, v6, ip


def sidecar_config(s: Scenario) -> dict[str, Any]:
    tproxy = s.mode == "TPROXY"
    bind: str | None = None
    if s.bind == "passthrough":
        bind = "::6" if s.v6 else "127.0.0.6"
    elif s.bind.startswith("original_src"):
        bind = "downstream_src"
    target = "original_dst"
    if s.target == "loopback":
        target = f"[::1]:{s.app_port}" if s.v6 else f"127.0.0.1:{s.app_port}"
    elif s.target == "pod_ip":
        target = f"[{s.pod_ip}]:{s.app_port}" if s.v6 else f"{s.pod_ip}:{s.app_port}"
    return {
        "port": 15006,
        "addr": "::" if s.v6 else "0.0.0.0",
        "transparent": tproxy,
        "uid": 0 if tproxy else s.proxy_uid,
        "gid": s.proxy_gid,
        "orig_dst": "getsockname" if tproxy else "so_original_dst",
        "upstream_target": target,
        "upstream_bind": bind,
        "upstream_transparent": bind == "downstream_src",
        "upstream_mark": s.mark if s.bind == "original_src" else 0,
        "upstream_timeout": UPSTREAM_TIMEOUT,
    }


def _tcp_proxy_chain(name: str, cluster: str) -> dict[str, Any]:
    """A filter chain whose tcp_proxy sends everything to `cluster`."""
    tcp_proxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    return {
        "name": name,
        "filters": [
            {
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {"@type": tcp_proxy, "stat_prefix": cluster, "cluster": cluster},
            }
        ],
    }


def envoy_dump(s: Scenario) -> str:
    """The Envoy config dump that describes the stand-in sidecar (what a user would upload)."""
    sc = sidecar_config(s)
    filters: list[dict[str, Any]] = [
        {
            "name": "envoy.filters.listener.original_dst",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
            },
        }
    ]
    if s.bind.startswith("original_src"):
        src: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
        }
        if s.bind == "original_src":
            src["mark"] = s.mark
        filters.append({"name": "envoy.filters.listener.original_src", "typed_config": src})
    cluster_name = f"inbound|{s.app_port}||"
    listener: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "virtualInbound",
        "address": {"socket_address": {"address": "::" if s.v6 else "0.0.0.0", "port_value": 15006}},
        "listener_filters": filters,
        "filter_chains": [_tcp_proxy_chain(cluster_name, cluster_name)],
    }
    if sc["transparent"]:
        listener["transparent"] = True
    cluster: dict[str, Any] = {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": cluster_name}
    if s.target == "original_dst":
        cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})
    else:
        host = sc["upstream_target"].rpartition(":")[0].strip("[]")
        cluster.update(
            {
                "type": "STATIC",
                "load_assignment": {
                    "cluster_name": cluster_name,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {"socket_address": {"address": host, "port_value": s.app_port}}
                                    }
                                }
                            ]
                        }
                    ],
                },
            }
        )
    if s.bind == "passthrough":
        cluster["upstream_bind_config"] = {"source_address": {"address": sc["upstream_bind"], "port_value": 0}}
    configs: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": {
                "node": {
                    "id": f"sidecar~{s.pod_ip}~app-{s.seed}.fuzz~fuzz.svc.cluster.local",
                    "metadata": {"INTERCEPTION_MODE": s.mode},
                }
            },
        }
    ]
    if s.sidecar:
        listeners = [{"name": "virtualInbound", "active_state": {"listener": listener}}]
        clusters = [{"cluster": cluster}]
        if s.direction == "outbound":
            listeners.append({"name": "virtualOutbound", "active_state": {"listener": _outbound_listener(s)}})
            clusters.append(
                {
                    "cluster": {
                        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "name": "PassthroughCluster",
                        "type": "ORIGINAL_DST",
                        "lb_policy": "CLUSTER_PROVIDED",
                    }
                }
            )
        configs.append(
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": listeners}
        )
        configs.append(
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": clusters}
        )
    return json.dumps({"configs": configs}, indent=1)


def _outbound_listener(s: Scenario) -> dict[str, Any]:
    """Istio's virtualOutbound: 15001, hands connections to the listener of their original destination, else
    passes them through to it (PassthroughCluster)."""
    listener: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "virtualOutbound",
        "address": {"socket_address": {"address": "::" if s.v6 else "0.0.0.0", "port_value": 15001}},
        "use_original_dst": True,
        "filter_chains": [_tcp_proxy_chain("PassthroughFilterChain", "PassthroughCluster")],
    }
    if s.mode == "TPROXY":
        listener["transparent"] = True
    return listener


def outbound_sidecar_config(s: Scenario) -> dict[str, Any]:
    tproxy = s.mode == "TPROXY"
    return {
        "name": "envoy-outbound",
        "port": 15001,
        "addr": "::" if s.v6 else "0.0.0.0",
        "transparent": tproxy,
        "uid": 0 if tproxy else s.proxy_uid,
        "gid": s.proxy_gid,
        "orig_dst": "so_original_dst",
        "upstream_target": "original_dst",
        "upstream_bind": None,
        "upstream_timeout": UPSTREAM_TIMEOUT,
    }


def sysctl_keys(s: Scenario) -> list[str]:
    keys = ["net.ipv4.ip_forward", "net.ipv4.tcp_fwmark_accept", "net.ipv4.fwmark_reflect"]
    for dev in ("all", "default", "lo", s.iface, *([s.extra_iface] if s.extra_iface else [])):
        keys += [f"net.ipv4.conf.{dev}.route_localnet", f"net.ipv4.conf.{dev}.rp_filter"]
        keys.append(f"net.ipv4.conf.{dev}.src_valid_mark")
    keys.append("net.ipv6.conf.all.forwarding")
    return keys


# --------------------------------------------------------------------------
# The kernel's answer
# --------------------------------------------------------------------------


@dataclass
class KernelRun:
    verdict: dict[str, Any]
    evidence: dict[str, Any]
    raw: dict[str, Any]


def observer(app_port: int, ifaces: list[str]) -> str:
    """An nft table in the pod that only counts (policy accept, no verdicts; iptables-save does not show it, so
    it is no part of the evidence): per interface, SYN-ACKs from the application's port that are not the answer
    to the client's own SYN (whose source port is fixed) - a reply that escaped; and SYNs to the application's
    port that the kernel hands to a non-transparent socket (the application's listener) other than the client's
    own - Envoy's upstream SYN reaching the application rather than being captured again."""
    post = "\n".join(
        f'    oifname "{i}" tcp sport {app_port} tcp flags & (syn|ack) == syn|ack tcp dport != {CLIENT_SPORT} '
        f'counter comment "escape {i}"'
        for i in ifaces
    )
    return (
        "table inet meshviz_observe {\n"
        "  chain post {\n    type filter hook postrouting priority 500; policy accept;\n"
        f"{post}\n  }}\n"
        "  chain input {\n    type filter hook input priority 500; policy accept;\n"
        f"    tcp dport {app_port} tcp flags & (syn|ack) == syn tcp sport != {CLIENT_SPORT} socket transparent 0 "
        'counter comment "app syn"\n  }\n}\n'
    )


def _counters(listing: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in listing.splitlines():
        if "counter packets" in line and 'comment "' in line:
            n = int(line.split("counter packets", 1)[1].split()[0])
            out[line.split('comment "', 1)[1].split('"', 1)[0]] = n
    return out


def observe(net: PodNet, app_port: int, ifaces: list[str]) -> None:
    """Install the counting table (see `observer`) in the pod."""
    net.run_pod(["nft", "-f", "-"], input=observer(app_port, ifaces))


def kernel_verdict(
    net: PodNet, got: Any, app: Any, sidecar: Any, client_ip: str, ifaces: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the kernel did, as the story's verdict fields (and the raw observations behind them).

    client_connected: the client's connect() returned; intercepted: the sidecar accepted the client's connection;
    app_reached / app_peer_ip: the application's accept() returned, and its getpeername(); app_would_see: Envoy's
    upstream SYN reached the application's listener (counted) but the handshake never completed: the address
    Envoy's upstream socket had; loop: the sidecar accepted its own upstream connection; failure: how it failed,
    at the resolution the kernel shows (CLIENT_<outcome>, LOOP, REPLY_ESCAPES_VIA_<interface where the SYN-ACK
    left>, EPERM_TRANSPARENT, UPSTREAM_FAILURE)."""
    time.sleep(0.05)
    accepted = app.accepted(timeout=0.0, count=1)
    events = sidecar.events(timeout=0.0, kinds=None, count=0) if sidecar is not None else []
    counted = _counters(net.run_pod(["nft", "list", "table", "inet", "meshviz_observe"]).stdout)
    sidecar_accepts = [e for e in events if e.get("event") == "accepted"]
    client_accepts = [e for e in sidecar_accepts if e.get("peer") and e["peer"][0] == client_ip]
    loops = [e for e in events if e.get("event") == "loop"]
    upstreams = [e for e in events if e.get("event") == "upstream"]
    first_up = upstreams[0] if upstreams else None
    verdict: dict[str, Any] = {
        "client_connected": got.client_connected,
        "intercepted": bool(client_accepts),
        "app_reached": bool(accepted),
        "app_peer_ip": accepted[0].peer[0] if accepted else None,
        "app_would_see": None,
        "loop": bool(loops),
        "failure": None,
    }
    escapes = [i for i in ifaces if counted.get(f"escape {i}")]
    app_got_syn = counted.get("app syn", 0) > 0
    if not got.client_connected:
        verdict["failure"] = f"CLIENT_{got.outcome.upper()}"
    elif loops:
        verdict["failure"] = "LOOP"
    elif first_up is not None and first_up.get("outcome") != "connected":
        if first_up.get("stage") == "IP_TRANSPARENT" and first_up.get("errno") == "EPERM":
            verdict["failure"] = "EPERM_TRANSPARENT"
        elif escapes:
            verdict["failure"] = f"REPLY_ESCAPES_VIA_{escapes[0]}"
            if not accepted and app_got_syn and first_up.get("upstream_local"):
                verdict["app_would_see"] = first_up["upstream_local"][0]
        else:
            verdict["failure"] = "UPSTREAM_FAILURE"
    elif not got.ok and not accepted and not client_accepts:
        verdict["failure"] = "UNEXPLAINED"
    raw = {
        "request": asdict(got),
        "sidecar_events": events,
        "app_accepted": [asdict(a) for a in accepted],
        "counters": counted,
    }
    return verdict, raw


def _outbound_kernel(net: PodNet, s: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    """The application (app uid/gid) calls a server in the client namespace on app_port, through the outbound
    sidecar on 15001 when the rules capture it.  The verdict's outbound fields: intercepted (the sidecar accepted
    the application's connection), loop, destination_reached / destination_peer_ip (the server accepted, its
    getpeername), failure (APP_<outcome> when the application's connect failed, LOOP, UPSTREAM_FAILURE)."""
    server = net.listen("server", s.app_port, addr="::" if s.v6 else "0.0.0.0", side="client")
    sc = net.sidecar(**outbound_sidecar_config(s)) if s.sidecar else None
    got = net.connect_from_pod(s.client_ip, s.app_port, uid=s.app_uid, gid=s.app_gid, timeout=REQUEST_TIMEOUT)
    time.sleep(0.05)
    accepted = server.accepted(timeout=0.0, count=1)
    events = sc.events(timeout=0.0, kinds=None, count=0) if sc is not None else []
    loops = [e for e in events if e.get("event") == "loop"]
    upstreams = [e for e in events if e.get("event") == "upstream"]
    intercepted = any(e.get("event") == "accepted" for e in events)
    verdict: dict[str, Any] = {
        "intercepted": intercepted,
        "loop": bool(loops),
        "destination_reached": bool(accepted),
        "destination_peer_ip": accepted[0].peer[0] if accepted else None,
        "failure": None,
    }
    if not got.connected:
        verdict["failure"] = f"APP_{got.outcome.upper()}"
    elif loops:
        verdict["failure"] = "LOOP"
    elif upstreams and upstreams[0].get("outcome") != "connected":
        verdict["failure"] = "UPSTREAM_FAILURE"
    raw = {"connect": asdict(got), "sidecar_events": events, "server_accepted": [asdict(a) for a in accepted]}
    return verdict, raw


def run_kernel(s: Scenario) -> KernelRun:
    v4, v6, ip_cmds = rules(s)
    ifaces = [s.iface, *([s.extra_iface] if s.extra_iface else [])]
    with PodNet(s.backend, iface=s.iface, ipv6=s.v6, ipv4=True, extra_iface=s.extra_iface) as net:  # type: ignore[arg-type]
        for cmd in ip_cmds:
            net.ip(*cmd)
        sysctls = {
            "net.ipv4.tcp_fwmark_accept": s.tcp_fwmark_accept,
            "net.ipv4.conf.all.route_localnet": s.route_localnet,
            "net.ipv4.conf.all.rp_filter": s.rp_filter,
            f"net.ipv4.conf.{s.iface}.rp_filter": s.rp_filter,
            "net.ipv4.conf.all.src_valid_mark": s.src_valid_mark,
        }
        for k, v in sysctls.items():
            net.sysctl(k, v)
        if s.native_nft:
            net.run_pod(["nft", "-f", "-"], input=nft_rules(s))
        else:
            net.load_iptables(v4, backend=s.backend)  # type: ignore[arg-type]
        if v6 is not None and not s.native_nft:
            net.run_pod([f"ip6tables-{s.backend}-restore", "-w", "10"], input=v6)
        other = "nft" if s.backend == "legacy" else "legacy"
        if s.other_backend == "filter":
            # Rules of another program (a host firewall, kube-proxy) in the other backend: both backends' tables
            # run in the kernel, and the evidence holds both saves.
            net.load_iptables(OTHER_FILTER.format(port=7777), backend=other)  # type: ignore[arg-type]
        if s.direction == "outbound":
            verdict, raw = _outbound_kernel(net, s)
        else:
            observe(net, s.app_port, ifaces)
            app = net.listen("app", s.app_port, addr="::" if s.v6 else "0.0.0.0", uid=s.app_uid, gid=s.app_gid)
            sc = net.sidecar(**sidecar_config(s)) if s.sidecar else None
            got = net.request_from_client(s.pod_ip, s.app_port, sport=CLIENT_SPORT, timeout=REQUEST_TIMEOUT)
            verdict, raw = kernel_verdict(net, got, app, sc, s.client_ip, ifaces)
        evidence = {
            "nftables": net.run_pod(["nft", "list", "ruleset"]).stdout if s.native_nft else None,
            "iptables": None
            if s.native_nft
            else net.iptables_save(backend=s.backend)  # type: ignore[arg-type]
            + (net.iptables_save(backend=other) if s.other_backend == "filter" else ""),  # type: ignore[arg-type]
            "ip6tables": net.run_pod([f"ip6tables-{s.backend}-save"]).stdout if s.v6 else None,
            "ip_rule": net.ip_rule_list(),
            "ip_route": net.ip_route_show_all(),
            "ip6_rule": net.ip6_rule_list() if s.v6 else None,
            "ip6_route": net.ip6_route_show_all() if s.v6 else None,
            "addr": net.ip_addr() if s.give_addr else None,
            "sysctl": net.sysctl_snapshot(sysctl_keys(s)),
            "envoy": envoy_dump(s),
        }
    return KernelRun(verdict, evidence, raw)


def run_engine(s: Scenario, evidence: dict[str, Any]) -> dict[str, Any]:
    conn: dict[str, Any]
    if s.direction == "outbound":
        dst = f"[{s.client_ip}]:{s.app_port}" if s.v6 else f"{s.client_ip}:{s.app_port}"
        conn = {"direction": "outbound", "dst": dst}
    else:
        client = f"[{s.client_ip}]:{CLIENT_SPORT}" if s.v6 else f"{s.client_ip}:{CLIENT_SPORT}"
        conn = {"client": client, "port": s.app_port}
    result = run_story(
        **conn,
        iptables=evidence["iptables"],
        nftables=evidence.get("nftables"),
        ip6tables=evidence["ip6tables"],
        ip_rule=evidence["ip_rule"],
        ip6_rule=evidence["ip6_rule"],
        ip_route=evidence["ip_route"],
        ip6_route=evidence["ip6_route"],
        addr=evidence["addr"],
        sysctl=evidence["sysctl"],
        envoy=evidence["envoy"],
        pod_ip=s.pod_ip if s.give_pod_ip else None,
        app_ports=(s.app_port,) if s.direction == "inbound" else (),
        app_uid=s.app_uid,
        app_gid=s.app_gid,
    )
    assert not result.errors, [str(e) for e in result.errors]
    assert result.story is not None
    return {"verdict": result.story.verdict.to_dict(), "summary": result.story.summary}


def observable(verdict: dict[str, Any]) -> dict[str, Any]:
    """The engine's verdict at the resolution the kernel observes: the client-side failure as the client saw it,
    the upstream failures Envoy reports as 503 UF as one."""
    v = dict(verdict)
    f = v.get("failure")
    if "client_connected" not in v:  # outbound
        if f and f != "LOOP":
            if v["intercepted"]:
                v["failure"] = "UPSTREAM_FAILURE"
            else:
                v["failure"] = {"NO_LISTENER": "APP_REFUSED", "NO_ROUTE": "APP_UNREACHABLE"}.get(f, "APP_TIMEOUT")
        return v
    if not v["client_connected"]:
        v["failure"] = {
            "NO_LISTENER": "CLIENT_REFUSED",
            "NO_ROUTE": "CLIENT_UNREACHABLE",
        }.get(f or "", "CLIENT_TIMEOUT")
    elif f in ("UPSTREAM_CONNECT_FAILURE", "TIMEOUT", "DROPPED", "NO_ROUTE"):
        v["failure"] = "UPSTREAM_FAILURE"
    return v


def compare(kernel: dict[str, Any], engine: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    e = observable(engine)
    return {k: (kernel.get(k), e.get(k)) for k in kernel if kernel.get(k) != e.get(k)}


@dataclass
class Outcome:
    scenario: Scenario
    kernel: dict[str, Any]
    engine: dict[str, Any]
    diff: dict[str, tuple[Any, Any]]
    summary: str
    raw: dict[str, Any]


def run(s: Scenario) -> Outcome:
    k = run_kernel(s)
    e = run_engine(s, k.evidence)
    return Outcome(s, k.verdict, e["verdict"], compare(k.verdict, e["verdict"]), e["summary"], k.raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="tests/artifacts/kernel-fuzz.jsonl")
    ap.add_argument("--nft", action="store_true", help="draw pods whose rules are Istio's nftables backend's")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    agree = 0
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    with out.open("w") as fh:
        for i in range(args.n):
            s = (draw_nft if args.nft else draw)(args.seed * 100_000 + i)
            o = run(s)
            ok = not o.diff
            agree += ok
            kinds[f"{s.mode} {s.family} {s.direction} -> {o.kernel['failure'] or 'ok'}"] += 1
            fh.write(
                json.dumps(
                    {
                        "scenario": asdict(s),
                        "kernel": o.kernel,
                        "engine": o.engine,
                        "diff": {k: list(v) for k, v in o.diff.items()},
                        "summary": o.summary,
                    }
                )
                + "\n"
            )
            if not ok:
                print(f"DISAGREE {s.label()}\n    diff {o.diff}\n    engine: {o.summary}", flush=True)
    took = time.monotonic() - started
    print(
        f"\nkernel fuzz: {agree} of {args.n} scenarios agree ({100.0 * agree / max(args.n, 1):.1f}%), seed {args.seed}, {took:.0f} s"
    )
    for k, v in sorted(kinds.items()):
        print(f"  {v:5d}  {k}")
    return 0 if agree == args.n else 1


def regression(seed: int, **overrides: Any) -> Scenario:
    """A scenario the fuzzer drew (by its seed), optionally pinned further, for named regression tests."""
    return replace(draw(seed), **overrides)


if __name__ == "__main__":
    sys.exit(main())
