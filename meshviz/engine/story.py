"""The whole connection story: client -> pod kernel -> Envoy -> application, and back.

`inbound_story` follows a client's connection to a pod port: the SYN through
the pod's kernel (REDIRECT or TPROXY or nothing), the socket that accepts it
(an Envoy listener, or the application directly), Envoy's listener hand-off,
filter chain and cluster, Envoy's upstream connection through OUTPUT,
routing, loopback and INPUT to the application's socket, and the
application's SYN-ACK on its way back.  `outbound_story` follows a
connection the application opens.  Both return a verdict with fixed field
names and findings in plain language that cite the rules, listener, filter
chain and cluster responsible.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from meshviz.engine.connection import ConnectionResult, Endpoint, connect_from_network, connect_from_pod
from meshviz.engine.envoy.matching import (
    ConnInfo,
    cluster_for,
    handoff,
    select_filter_chain,
    upstream_binding,
    upstream_target,
)
from meshviz.engine.envoy.model import EnvoyConfig, Listener
from meshviz.engine.model import Family, IPAddress, RuleAction, Snapshot, Socket
from meshviz.engine.nftables.profile import restores_ct_mark
from meshviz.engine.profile import (
    DEFAULT_APP_GID,
    DEFAULT_APP_UID,
    DEFAULT_INBOUND_PORT,
    DEFAULT_OUTBOUND_PORT,
    DEFAULT_POD_IFACE,
    DEFAULT_TPROXY_MARK,
    DEFAULT_TPROXY_TABLE,
    PodProfile,
)
from meshviz.engine.routing import Flow, route_output
from meshviz.engine.simulate import Host, Sender, Simulation
from meshviz.engine.sockets import SocketTable
from meshviz.engine.trace import Disposition, StepAction, StepKind, Trace

#: The verdict's fields, in order (the JSON contract of `story --format json`).
#: app_reached: the application's accept() returned for this connection; app_peer_ip: the peer it sees then;
#: app_would_see: the peer it would have seen when its listening socket answered but the handshake never
#: completed (the SYN-ACK was lost), else null.
INBOUND_VERDICT_FIELDS = (
    "client_connected",
    "intercepted",
    "app_reached",
    "app_peer_ip",
    "app_would_see",
    "loop",
    "failure",
)
OUTBOUND_VERDICT_FIELDS = ("intercepted", "loop", "destination_reached", "destination_peer_ip", "failure")


@dataclass(frozen=True)
class Finding:
    """One explanation.  kind: cause | fact | assumption | warning."""

    kind: str
    text: str
    refs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "refs": list(self.refs)}


@dataclass(frozen=True)
class StoryHop:
    """One hop of the story: a kernel trace, or a decision Envoy took."""

    title: str
    node: str  # client | pod-kernel | envoy | application
    detail: str
    trace: Trace | None = None
    steps: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"title": self.title, "node": self.node, "detail": self.detail, "steps": list(self.steps)}
        if self.trace is not None:
            d["trace"] = self.trace.to_dict()
        return d


@dataclass(frozen=True)
class Story:
    direction: str
    verdict: dict[str, Any]
    findings: tuple[Finding, ...]
    hops: tuple[StoryHop, ...]
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "summary": self.summary,
            "facts": dict(self.facts),
            "verdict": dict(self.verdict),
            "findings": [f.to_dict() for f in self.findings],
            "traces": [h.to_dict() for h in self.hops],
        }


@dataclass(frozen=True)
class PodContext:
    """Who is who in the pod (built from the evidence's PodProfile, see meshviz.engine.profile)."""

    pod_ip: IPAddress
    proxy_uid: int
    proxy_gid: int
    proxy_net_admin: bool
    app_uid: int = DEFAULT_APP_UID
    app_gid: int = DEFAULT_APP_GID
    app_ports: tuple[int, ...] = ()
    client_tls: bool = False  # the client speaks (m)TLS to the pod (a meshed client's sidecar does)
    pod_iface: str = DEFAULT_POD_IFACE
    pod_ips: tuple[IPAddress, ...] = ()  # every address of the pod (dual stack); pod_ip when empty
    tproxy_mark: int = DEFAULT_TPROXY_MARK
    tproxy_table: int = DEFAULT_TPROXY_TABLE
    mode: str = "REDIRECT"
    outbound_port: int = DEFAULT_OUTBOUND_PORT  # Envoy's capture ports, as the rules redirect to them
    inbound_port: int = DEFAULT_INBOUND_PORT

    @classmethod
    def of(cls, profile: PodProfile, *, client_tls: bool = False) -> PodContext:
        assert profile.pod_ip is not None
        return cls(
            pod_ip=profile.pod_ip,
            proxy_uid=profile.proxy_uid,
            proxy_gid=profile.proxy_gid,
            proxy_net_admin=profile.proxy_net_admin,
            app_uid=profile.app_uid,
            app_gid=profile.app_gid,
            app_ports=profile.app_ports,
            client_tls=client_tls,
            pod_iface=profile.pod_iface,
            pod_ips=profile.pod_ips,
            tproxy_mark=profile.tproxy_mark,
            tproxy_table=profile.tproxy_table,
            mode=profile.mode,
            outbound_port=profile.outbound_port,
            inbound_port=profile.inbound_port,
        )

    def pod_ip_for(self, addr: IPAddress) -> IPAddress | None:
        """The pod's address of `addr`'s family."""
        for a in self.pod_ips or (self.pod_ip,):
            if a.version == addr.version:
                return a
        return None

    def is_local(self, addr: IPAddress) -> bool:
        return addr.is_loopback or addr in (self.pod_ips or (self.pod_ip,))


def ingress_interface(snapshot: Snapshot, ctx: PodContext, client: IPAddress) -> tuple[str, str | None]:
    """The interface a client's packets arrive on: the one the pod's routes send its replies to the client out of
    (routing is symmetric in a pod); the pod's own interface when the routes do not say."""
    d = route_output(snapshot, Flow(dst=client))
    if d.ok and d.dev and not d.local and d.dev != "lo":
        return d.dev, None
    return ctx.pod_iface, (
        f"the routes give no way back to {client}: assuming its packets arrive on the pod's interface {ctx.pod_iface}"
    )


# --------------------------------------------------------------------------
# Sockets: Envoy's listeners and the application
# --------------------------------------------------------------------------


def envoy_sockets(
    envoy: EnvoyConfig | None,
    ctx: PodContext,
    tproxy: bool,
    ports: tuple[int, int] = (DEFAULT_OUTBOUND_PORT, DEFAULT_INBOUND_PORT),
) -> tuple[list[Socket], list[str]]:
    """Envoy's listening sockets: the dump's active listeners, or (no dump) Istio's two capture listeners on the
    ports the rules redirect to (`ports` = outbound, inbound)."""
    notes: list[str] = []
    out: list[Socket] = []
    if envoy is None:
        notes.append(
            f"no Envoy config given: assuming Istio's standard sidecar listeners on {ports[0]} (outbound) and "
            f"{ports[1]} (inbound){', transparent (TPROXY)' if tproxy else ''}"
        )
        families = sorted({a.version for a in (ctx.pod_ips or (ctx.pod_ip,))})
        for port, role in ((ports[0], "virtualOutbound"), (ports[1], "virtualInbound")):
            for v in families:
                out.append(
                    Socket(
                        protocol="tcp",
                        local_port=port,
                        transparent=tproxy,
                        uid=ctx.proxy_uid,
                        gid=ctx.proxy_gid,
                        name=f"envoy listener {role}",
                        family=Family.IPV6 if v == 6 else Family.IPV4,
                    )
                )
        return out, notes
    for lst in envoy.listeners:
        if lst.state != "active" or not lst.bind_to_port:
            continue
        # One socket per address (a dual-stack listener has `additional_addresses`); `::` with ipv4_compat
        # takes IPv4 connections too.
        for a in lst.addresses:
            ip = a.ip
            if ip is None or a.port is None:
                continue
            fams = [Family.of(ip)] + ([Family.IPV4] if ip.version == 6 and ip.is_unspecified and a.ipv4_compat else [])
            for fam in fams:
                out.append(
                    Socket(
                        protocol="tcp",
                        local_port=a.port,
                        local_addr=None if ip.is_unspecified else ip,
                        transparent=bool(lst.transparent),
                        uid=ctx.proxy_uid,
                        gid=ctx.proxy_gid,
                        name=f"envoy listener {lst.name}",
                        family=fam,
                    )
                )
    return out, notes


def app_sockets(
    ctx: PodContext, ports: tuple[int, ...], taken: set[int], *, assumed: tuple[int, ...] = ()
) -> tuple[list[Socket], list[str]]:
    """The application's listeners: one per port that Envoy does not already listen on, on every address of
    the pod (a wildcard socket; dual stack when the pod has an IPv6 address).  `assumed` ports are not in the
    evidence: each is stated as an assumption."""
    families = sorted({a.version for a in (ctx.pod_ips or (ctx.pod_ip,))})
    out: list[Socket] = []
    notes: list[str] = []
    for p in sorted(set(ports) | set(assumed)):
        if p in taken:
            continue
        for v in families:
            out.append(
                Socket(
                    protocol="tcp",
                    local_port=p,
                    uid=ctx.app_uid,
                    gid=ctx.app_gid,
                    name=f"application :{p}",
                    family=Family.IPV6 if v == 6 else Family.IPV4,
                )
            )
        if p in assumed and p not in ports:
            notes.append(
                f"assuming the application listens on port {p} (the evidence names no application port for it)"
            )
    return out, notes


def _listener_of(envoy: EnvoyConfig | None, sock_name: str | None) -> Listener | None:
    if envoy is None or not sock_name or not sock_name.startswith("envoy listener "):
        return None
    return envoy.listener(sock_name[len("envoy listener ") :])


def _is_envoy(name: str | None) -> bool:
    return bool(name and name.startswith("envoy listener"))


# --------------------------------------------------------------------------
# Inbound
# --------------------------------------------------------------------------


@dataclass
class _Builder:
    hops: list[StoryHop] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def hop(self, title: str, node: str, detail: str, trace: Trace | None = None, steps: tuple[str, ...] = ()) -> None:
        self.hops.append(StoryHop(title, node, detail, trace, steps))

    def find(self, kind: str, text: str, *refs: str) -> None:
        self.findings.append(Finding(kind, text, tuple(r for r in refs if r)))


def inbound_story(
    snapshot: Snapshot,
    envoy: EnvoyConfig | None,
    ctx: PodContext,
    client: Endpoint,
    port: int,
    *,
    assumptions: tuple[str, ...] = (),
    host: Host | None = None,
) -> Story:
    b = _Builder()
    for a in assumptions:
        b.find("assumption", a)
    verdict: dict[str, Any] = {
        "client_connected": False,
        "intercepted": False,
        "app_reached": False,
        "app_peer_ip": None,
        "app_would_see": None,
        "loop": False,
        "failure": None,
    }
    pod_ip = ctx.pod_ip_for(client.addr)
    if pod_ip is None:
        fam = "IPv6" if client.addr.version == 6 else "IPv4"
        verdict["failure"] = "NO_ROUTE"
        b.find("cause", f"the pod has no {fam} address for the {fam} client {client.addr} to connect to")
        return _finish("inbound", verdict, b, f"{client} -> pod:{port}")
    tproxy = ctx.mode == "TPROXY" or (envoy is not None and envoy.interception_mode == "TPROXY")
    e_socks, notes = envoy_sockets(envoy, ctx, tproxy, (ctx.outbound_port, ctx.inbound_port))
    given = tuple(ctx.app_ports)
    a_socks, notes2 = app_sockets(ctx, given, {s.local_port for s in e_socks}, assumed=() if given else (port,))
    for n in notes + notes2:
        b.find("assumption", n)
    iface, iface_note = ingress_interface(snapshot, ctx, client.addr)
    if iface_note:
        b.find("assumption", iface_note)
    sim = Simulation(host or Host(snapshot), SocketTable.of(tuple(e_socks + a_socks)))
    dst = Endpoint(pod_ip, port)
    b.facts["ingress_interface"] = iface

    first = connect_from_network(sim, client, dst, iface)
    _kernel_hops(b, first, f"client {client} -> {dst} (arrives on {iface})", "client SYN")
    verdict["client_connected"] = first.outcome == "connected"
    if first.outcome != "connected":
        verdict["failure"] = _failure_code(first)
        capture = _capture_rule(first.syn)
        fp = first.syn.final_packet if first.syn else None
        if first.outcome == "refused" and capture[1] and fp is not None:
            b.find("fact", f"the client's SYN to {dst} is captured {capture[0]}", capture[1])
            b.find(
                "cause",
                f"nothing listens on {Endpoint(fp.dst, fp.dport)}: {_missing_listener(envoy, fp.dport)}; the "
                "kernel answers the client with a TCP reset (connection refused)",
            )
        else:
            b.find("cause", f"the client's connection to {dst} fails: {first.detail}", *_rule_refs(first.syn))
        if first.accepted_by is not None and not _is_envoy(first.accepted_by) and first.peer_seen is not None:
            verdict["app_would_see"] = str(first.peer_seen.addr)
            b.find(
                "fact",
                f"the application's accept() never returns: the handshake does not complete (had it completed, "
                f"the application would have seen {first.peer_seen.addr})",
            )
        return _finish("inbound", verdict, b, f"{client} -> {dst}")

    capture = _capture_rule(first.syn)
    b.facts.update(
        captured=bool(capture[1]), capture=capture[0], capture_rule=capture[1], accepted_by=first.accepted_by
    )
    if _is_envoy(first.accepted_by) and not capture[1]:
        # Not diverted: the client reached one of Envoy's own listeners on its real port (health, metrics...).
        b.find(
            "cause",
            f"port {port} is not intercepted: {first.accepted_by} listens on it itself and accepts the client "
            f"directly ({client} is what it sees)",
            *_rule_refs(first.syn),
        )
        return _finish("inbound", verdict, b, f"{client} -> {dst}")
    if not _is_envoy(first.accepted_by):
        verdict["app_reached"] = first.accepted_by is not None and first.accepted_by.startswith("application")
        verdict["app_peer_ip"] = str(first.peer_seen.addr) if first.peer_seen else None
        b.find(
            "cause",
            f"port {port} is not intercepted: the SYN reaches {first.accepted_by} directly, so the "
            f"application sees the client address {verdict['app_peer_ip']}",
            *_rule_refs(first.syn),
        )
        return _finish("inbound", verdict, b, f"{client} -> {dst}")

    verdict["intercepted"] = True
    b.find("fact", f"the client's SYN to {dst} is captured {capture[0]}", capture[1])
    _envoy_leg(b, sim, envoy, ctx, first, Endpoint(pod_ip, port), verdict, depth=0)
    return _finish("inbound", verdict, b, f"{client} -> {dst}")


@dataclass
class _EnvoyDecision:
    """What Envoy does with an accepted connection: the listener that ends up with it, and the upstream."""

    listener: str | None
    steps: list[str]
    target: Endpoint | None
    bind: IPAddress | None = None
    mark: int = 0
    transparent: bool = False
    via: str = "no bind: the kernel chooses the source address"
    cluster: str | None = None
    failure: str | None = None  # NO_FILTER_CHAIN | DOWNSTREAM_TLS_REQUIRED | NO_CLUSTER | NO_HEALTHY_UPSTREAM
    failure_text: str = ""


def _envoy_decide(
    envoy: EnvoyConfig | None,
    lst: Listener | None,
    peer: Endpoint,
    orig_dst: Endpoint,
    *,
    client_tls: bool,
    source_is_local: bool,
) -> _EnvoyDecision:
    """Envoy's real order: use_original_dst hand-off, filter chain, cluster, upstream target and binding."""
    d = _EnvoyDecision(
        lst.name if lst else None, [f"downstream peer {peer}, original destination {orig_dst}"], orig_dst
    )
    if envoy is None or lst is None:
        return d
    final = lst
    if lst.use_original_dst:
        h = handoff(envoy, lst, (orig_dst.addr, orig_dst.port))
        if h is not None and h.name != lst.name:
            d.steps.append(f"listener {lst.name} (use_original_dst) hands the connection to listener {h.name}")
            final = h
        else:
            d.steps.append(f"listener {lst.name}: no listener bound to {orig_dst}, it keeps the connection")
    d.listener = final.name
    info = ConnInfo(
        dst_ip=orig_dst.addr,
        dst_port=orig_dst.port,
        src_ip=peer.addr,
        src_port=peer.port,
        direct_src_ip=peer.addr,
        transport_protocol="tls" if client_tls else "raw_buffer",
        source_is_local=source_is_local,
    )
    sel = select_filter_chain(final, info)
    d.steps.extend(sel.explanation)
    if sel.chain is None:
        d.failure = "NO_FILTER_CHAIN"
        d.failure_text = f"Envoy's listener {final.name} has no filter chain for {orig_dst}: it closes the connection"
        return d
    if sel.chain.transport_socket == "tls" and not client_tls:
        d.failure = "DOWNSTREAM_TLS_REQUIRED"
        d.failure_text = (
            f"Envoy's filter chain {sel.chain.label} of listener {final.name} terminates (m)TLS, but the client "
            "speaks plaintext: the TLS handshake fails and Envoy closes the connection before opening any "
            "upstream connection, so the application is never reached (a strict mTLS PeerAuthentication; "
            "give --client-tls for a meshed client)"
        )
        return d
    cs = cluster_for(sel.chain, host=str(orig_dst.addr), path="/", config=envoy)
    d.steps.extend(cs.explanation)
    d.cluster = cs.cluster_name
    cluster = cs.cluster
    if cluster is None:
        d.failure = "NO_CLUSTER"
        d.failure_text = (
            f"filter chain {sel.chain.label} of {final.name} names cluster {cs.cluster_name!r}, which the config "
            "does not have (503 NC)"
        )
        return d
    utarget = upstream_target(cluster, (orig_dst.addr, orig_dst.port))
    d.steps.extend(utarget.explanation)
    ut = utarget.as_tuple()
    if ut is None:
        d.failure = "NO_HEALTHY_UPSTREAM"
        d.failure_text = f"cluster {cluster.name} ({cluster.type}) has no endpoint Envoy can dial (503 UH)"
        return d
    d.target = Endpoint(ut[0], ut[1])
    ub = upstream_binding(envoy, final, cluster, peer.addr, chain=sel.chain)
    d.steps.extend(ub.explanation)
    d.bind, d.mark, d.transparent, d.via = ub.bind_ip, ub.mark, ub.transparent, ub.via
    d.steps.append(f"cluster {cluster.name} ({cluster.type}) dials {d.target}; upstream bind: {d.via}")
    return d


def _envoy_leg(
    b: _Builder,
    sim: Simulation,
    envoy: EnvoyConfig | None,
    ctx: PodContext,
    accepted: ConnectionResult,
    orig_dst: Endpoint,
    verdict: dict[str, Any],
    depth: int,
) -> None:
    """Envoy accepted `accepted`: pick listener, chain, cluster; open the upstream connection."""
    peer = accepted.peer_seen
    assert peer is not None
    lst = _listener_of(envoy, accepted.accepted_by)
    d = _envoy_decide(
        envoy,
        lst,
        peer,
        orig_dst,
        client_tls=ctx.client_tls,
        source_is_local=ctx.is_local(peer.addr),
    )
    if d.failure is not None:
        verdict["failure"] = d.failure
        b.hop(f"Envoy {d.listener}", "envoy", d.failure_text, steps=tuple(d.steps))
        b.find("cause", d.failure_text, f"listener {d.listener}")
        return
    if envoy is None:
        d.steps.append("no Envoy config: assuming Istio's inbound behaviour for this interception mode")
        if ctx.proxy_uid == 0:
            d.bind, d.mark, d.transparent = peer.addr, ctx.tproxy_mark, True
            d.via = f"assumed original_src (TPROXY), mark {ctx.tproxy_mark}"
        else:
            inbound_passthrough = ipaddress.ip_address("::6" if peer.addr.version == 6 else "127.0.0.6")
            d.bind, d.via = inbound_passthrough, f"assumed upstream_bind_config {inbound_passthrough} (Istio >= 1.10)"
    target, bind, mark, transparent, via, cluster_name = d.target, d.bind, d.mark, d.transparent, d.via, d.cluster
    if d.cluster:
        b.find(
            "fact",
            f"Envoy's listener {d.listener} sends it to cluster {d.cluster}, which dials {d.target} ({d.via})",
            f"cluster {d.cluster}",
        )
    steps = d.steps
    lst_name = d.listener or accepted.accepted_by
    b.facts.update(
        downstream_peer=str(peer),
        original_dst=str(orig_dst),
        listener=lst_name,
        cluster=cluster_name,
        upstream_target=str(target),
        upstream_bind=via,
        upstream_mark=mark,
    )
    b.hop(
        f"Envoy {lst_name}",
        "envoy",
        f"Envoy accepts {peer} -> {orig_dst}" + (f"; cluster {cluster_name}" if cluster_name else ""),
        steps=tuple(steps),
    )
    if transparent and not ctx.proxy_net_admin:
        verdict["failure"] = "EPERM_TRANSPARENT"
        b.find(
            "cause",
            f"Envoy must bind transparently to {bind} ({via}) but runs as uid {ctx.proxy_uid} without "
            "CAP_NET_ADMIN: setsockopt(IP_TRANSPARENT) fails with EPERM",
            f"listener {lst_name}",
        )
        return
    sender = Sender(
        uid=ctx.proxy_uid, gid=ctx.proxy_gid, mark=mark, transparent=transparent, name=f"envoy upstream to {target}"
    )
    assert target is not None
    up = connect_from_pod(sim, target, sender, bind=bind)
    _kernel_hops(b, up, f"Envoy upstream {bind or 'pod'} -> {target}", "Envoy's upstream SYN")
    b.facts.update(
        upstream_accepted_by=up.accepted_by,
        app_peer=str(up.peer_seen) if up.peer_seen else None,
        reply_path=_reply_path(up.synack),
    )
    if up.outcome == "connected" and _is_envoy(up.accepted_by):
        verdict["loop"] = True
        verdict["failure"] = "LOOP"
        rule = _capture_rule(up.syn)
        b.find(
            "cause",
            f"Envoy's own upstream connection to {target} is captured again {rule[0]} and lands on "
            f"{up.accepted_by}: loop",
            rule[1],
        )
        return
    if up.outcome == "connected":
        verdict["app_reached"] = True
        app_ip = str(up.peer_seen.addr) if up.peer_seen else None
        verdict["app_peer_ip"] = app_ip
        b.hop("application", "application", f"{up.accepted_by} accepts; it sees the peer {up.peer_seen}")
        b.find("cause", _why_peer(app_ip, peer, bind, via, cluster_name, target))
        return
    if up.outcome == "timeout" and up.synack is not None and up.synack.disposition == Disposition.EXITS_INTERFACE:
        iface = up.synack.interface or "?"
        if _is_envoy(up.accepted_by):
            rule = _capture_rule(up.syn)
            verdict["failure"] = f"REPLY_ESCAPES_VIA_{iface}"
            b.find(
                "cause",
                f"Envoy's own upstream SYN to {target} is captured again {rule[0]} and lands on "
                f"{up.accepted_by} instead of the application",
                rule[1],
            )
            save = _save_mark_rule(sim.host.snapshot)
            if save is not None and any(st.detail.startswith("TPROXY") for st in (up.syn.steps() if up.syn else [])):
                b.find(
                    "cause",
                    f"TPROXY's verdict (ACCEPT) ends mangle PREROUTING before `{save}`, so the re-captured "
                    "connection is never marked and keeps ctmark 0x0",
                    save,
                )
            b.find("cause", _why_reply_escapes(sim.host.snapshot, up, iface, ctx), *_rule_refs(up.synack))
            b.find(
                "fact",
                "the handshake never completes: Envoy's upstream connect times out and the client gets "
                "503 with response flag UF (a reset for TCP)",
            )
            return
        would = str(up.peer_seen.addr) if up.peer_seen else None
        verdict["app_would_see"] = would
        verdict["failure"] = f"REPLY_ESCAPES_VIA_{iface}"
        b.find("cause", _why_reply_escapes(sim.host.snapshot, up, iface, ctx), *_rule_refs(up.synack))
        b.find(
            "fact",
            f"the application's accept() never returns: its SYN-ACK leaves via {iface}, so the handshake with "
            f"Envoy never completes (had it completed, the application would have seen {would})",
        )
        b.find(
            "fact",
            "Envoy's upstream connect times out: the client gets 503 with response flag UF "
            "(upstream connection failure) for HTTP, a reset for TCP",
        )
        return
    verdict["failure"] = "UPSTREAM_CONNECT_FAILURE" if up.outcome != "left_pod" else None
    b.find("cause", f"Envoy's upstream connection to {target} fails: {up.detail} (503 UF)", *_rule_refs(up.syn))


def _missing_listener(envoy: EnvoyConfig | None, port: int) -> str:
    if envoy is None:
        return f"no Envoy config was given to say what should listen on port {port}"
    for lst in envoy.listeners:
        if lst.address is not None and lst.address.port == port:
            if lst.state == "error":
                return (
                    f"Envoy's listener {lst.name} on port {port} failed to load ({lst.error_detail or 'error state'})"
                )
            if lst.state != "active":
                return f"Envoy's listener {lst.name} on port {port} is {lst.state}, not yet accepting"
            if not lst.bind_to_port:
                return f"Envoy's listener {lst.name} has bind_to_port: false"
    return f"the Envoy config has no listener on port {port}"


def _why_peer(
    app_ip: str | None, peer: Endpoint, bind: IPAddress | None, via: str, cluster: str | None, target: Endpoint | None
) -> str:
    cl = f"cluster `{cluster}`" if cluster else "Envoy"
    if app_ip is None:
        return "the application accepted, but its peer is unknown"
    if app_ip == str(peer.addr):
        return (
            f"the application sees the client address {app_ip}: Envoy binds its upstream connection "
            f"transparently to the client ({via})"
        )
    if bind is not None and app_ip == str(bind):
        return f"the application sees {app_ip} because {cl} binds upstream connections to {bind} ({via})"
    if target is not None and target.addr.is_loopback:
        return (
            f"the application sees {app_ip} because {cl} dials {target} and the kernel picks {app_ip} as the "
            "source of a connection to a loopback address"
        )
    return f"the application sees {app_ip}: {cl} opens the upstream connection from that address ({via})"


def _save_mark_rule(snapshot: Snapshot) -> str | None:
    for rs in snapshot.rulesets:
        t = rs.table("mangle")
        c = t.chain("PREROUTING") if t else None
        for r in c.rules if c else ():
            if r.target is not None and r.target.name == "CONNMARK" and r.target.option("save-mark") is not None:
                return r.text().strip()
    return None


def _has_restore_rule(snapshot: Snapshot) -> bool:
    if restores_ct_mark(snapshot.nftables):
        return True
    return any(
        r.target is not None and r.target.name == "CONNMARK" and r.target.option("restore-mark") is not None
        for rs in snapshot.rulesets
        for t in rs.tables
        for c in t.chains
        for r in c.rules
    )


def _why_reply_escapes(snapshot: Snapshot, up: ConnectionResult, iface: str, ctx: PodContext) -> str:
    t = up.synack
    assert t is not None
    p = t.final_packet or t.packet
    mark = p.mark
    fw = [r for r in snapshot.routing.rules if r.fwmark is not None and r.action == RuleAction.LOOKUP]
    restored = any("restore" in s.detail for s in t.rules_hit())
    restore = "`meta mark set ct mark`" if snapshot.nftables and not snapshot.rulesets else "CONNMARK --restore-mark"
    src = f"{t.packet.src}:{t.packet.sport}"
    if fw:
        r = fw[0]
        rtext = r.ref.text.strip() if r.ref else f"fwmark {r.fwmark:#x} lookup {r.table}"
        if (mark ^ (r.fwmark or 0)) & r.fwmask:
            why = (
                f"the SYN-ACK from {src} to {t.packet.dst} carries mark {mark:#x}, so policy rule '{rtext}' does "
                f"not apply and it leaves via {iface}"
            )
            if not restored:
                why += (
                    f" (the connection carries ctmark {p.ctmark:#x}: Envoy's upstream SYN never had mark "
                    f"{r.fwmark:#x} saved on it, so no {restore} rule gives the reply that mark)"
                    if _has_restore_rule(snapshot)
                    else f" (there is no {restore} rule to give it the connection's mark)"
                )
            return why
        return f"the SYN-ACK from {src} matches '{rtext}' but still leaves via {iface}"
    return (
        f"the SYN-ACK from {src} to {t.packet.dst} (mark {mark:#x}) leaves via {iface}: there is no policy rule "
        f"sending marked replies to lo (`ip rule add fwmark {ctx.tproxy_mark} lookup {ctx.tproxy_table}` with "
        f"`ip route add local default dev lo table {ctx.tproxy_table}`)"
    )


# --------------------------------------------------------------------------
# Outbound
# --------------------------------------------------------------------------


def outbound_story(
    snapshot: Snapshot,
    envoy: EnvoyConfig | None,
    ctx: PodContext,
    dst: Endpoint,
    *,
    app_uid: int,
    app_gid: int,
    assumptions: tuple[str, ...] = (),
    host: Host | None = None,
) -> Story:
    b = _Builder()
    for a in assumptions:
        b.find("assumption", a)
    tproxy = ctx.mode == "TPROXY" or (envoy is not None and envoy.interception_mode == "TPROXY")
    e_socks, notes = envoy_sockets(envoy, ctx, tproxy, (ctx.outbound_port, ctx.inbound_port))
    # The same listeners as the inbound story: the evidence's application ports; a connection to the pod itself
    # on a port the evidence does not name assumes the application listens there, and says so.
    given = tuple(ctx.app_ports)
    assumed = (dst.port,) if ctx.is_local(dst.addr) and not given else ()
    a_socks, notes2 = app_sockets(ctx, given, {s.local_port for s in e_socks}, assumed=assumed)
    for n in notes + notes2:
        b.find("assumption", n)
    sim = Simulation(host or Host(snapshot), SocketTable.of(tuple(e_socks + a_socks)))
    verdict: dict[str, Any] = {
        "intercepted": False,
        "loop": False,
        "destination_reached": False,
        "destination_peer_ip": None,
        "failure": None,
    }
    app = Sender(uid=app_uid, gid=app_gid, name=f"application (uid {app_uid}, gid {app_gid})")
    first = connect_from_pod(sim, dst, app)
    _kernel_hops(b, first, f"application -> {dst}", "the application's SYN")
    if first.outcome == "left_pod":
        verdict["destination_reached"] = True
        verdict["destination_peer_ip"] = str(first.local_seen.addr) if first.local_seen else None
        b.find("assumption", f"what answers {dst} outside the pod is not in the evidence: assuming it accepts")
        b.find(
            "cause",
            f"the connection to {dst} is not captured: it leaves the pod directly from "
            f"{verdict['destination_peer_ip']}",
            *_rule_refs(first.syn),
        )
        return _finish("outbound", verdict, b, f"application -> {dst}")
    if first.outcome != "connected":
        verdict["failure"] = _failure_code(first)
        b.find("cause", f"the application's connection to {dst} fails: {first.detail}", *_rule_refs(first.syn))
        return _finish("outbound", verdict, b, f"application -> {dst}")
    if not _is_envoy(first.accepted_by):
        verdict["destination_reached"] = True
        verdict["destination_peer_ip"] = str(first.peer_seen.addr) if first.peer_seen else None
        b.find(
            "cause",
            f"the connection stays inside the pod and reaches {first.accepted_by} without Envoy",
            *_rule_refs(first.syn),
        )
        return _finish("outbound", verdict, b, f"application -> {dst}")
    verdict["intercepted"] = True
    capture = _capture_rule(first.syn)
    b.find("fact", f"the application's SYN to {dst} is captured {capture[0]}", capture[1])
    peer = first.peer_seen
    assert peer is not None
    d = _envoy_decide(envoy, _listener_of(envoy, first.accepted_by), peer, dst, client_tls=False, source_is_local=True)
    if d.failure is not None:
        verdict["failure"] = d.failure
        b.hop(f"Envoy {d.listener}", "envoy", d.failure_text, steps=tuple(d.steps))
        b.find("cause", d.failure_text, f"listener {d.listener}")
        return _finish("outbound", verdict, b, f"application -> {dst}")
    target = d.target or dst
    bind, mark, transparent, steps = d.bind, d.mark, d.transparent, d.steps
    if d.cluster:
        b.find(
            "fact",
            f"Envoy's listener {d.listener} sends it to cluster {d.cluster}, which dials {target}",
            f"cluster {d.cluster}",
        )
    b.hop("Envoy", "envoy", f"Envoy forwards to {target}", steps=tuple(steps))
    up = connect_from_pod(
        sim,
        target,
        Sender(uid=ctx.proxy_uid, gid=ctx.proxy_gid, mark=mark, transparent=transparent, name="envoy upstream"),
        bind=bind,
    )
    _kernel_hops(b, up, f"Envoy upstream -> {target}", "Envoy's upstream SYN")
    if up.outcome == "connected" and _is_envoy(up.accepted_by):
        verdict["loop"] = True
        verdict["failure"] = "LOOP"
        rule = _capture_rule(up.syn)
        b.find("cause", f"Envoy's upstream connection to {target} is captured again {rule[0]}: loop", rule[1])
    elif up.outcome == "left_pod":
        verdict["destination_reached"] = True
        verdict["destination_peer_ip"] = str(up.local_seen.addr) if up.local_seen else None
        b.find(
            "cause",
            f"Envoy's uid {ctx.proxy_uid}/gid {ctx.proxy_gid} connection bypasses capture and leaves "
            f"the pod from {verdict['destination_peer_ip']}",
            *_rule_refs(up.syn),
        )
    elif up.outcome == "connected":
        verdict["destination_reached"] = True
        verdict["destination_peer_ip"] = str(up.peer_seen.addr) if up.peer_seen else None
    else:
        verdict["failure"] = _failure_code(up)
        b.find("cause", f"Envoy's upstream connection to {target} fails: {up.detail}", *_rule_refs(up.syn))
    return _finish("outbound", verdict, b, f"application -> {dst}")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _kernel_hops(b: _Builder, r: ConnectionResult, what: str, syn_title: str) -> None:
    if r.syn is not None:
        b.hop(syn_title, "pod-kernel", f"{what}: {r.syn.disposition.value} - {r.syn.detail}", trace=r.syn)
    if r.synack is not None:
        b.hop("SYN-ACK", "pod-kernel", f"the reply: {r.synack.disposition.value} - {r.synack.detail}", trace=r.synack)


def _reply_path(t: Trace | None) -> str | None:
    """How the reply (SYN-ACK) was routed, in one line: the last routing decision and where it ended."""
    if t is None:
        return None
    routes = [
        s.detail.split(" — ")[0]
        for s in t.steps()
        if s.kind == StepKind.ROUTING_LOOKUP and not s.detail.startswith("looped-back")
    ]
    end = {Disposition.EXITS_INTERFACE: f"leaves via {t.interface}", Disposition.ACCEPTED_TO_SOCKET: "back to Envoy"}
    return f"{routes[-1] if routes else 'no routing'}; {end.get(t.disposition, t.disposition.value)}"


def _rule_refs(t: Trace | None) -> tuple[str, ...]:
    if t is None:
        return ()
    return tuple(
        f"{s.table}/{s.chain} #{s.index}: {s.rule}"
        for s in t.rules_hit()
        if s.action not in (StepAction.JUMP, StepAction.GOTO)
    )


def _capture_rule(t: Trace | None) -> tuple[str, str]:
    """How the packet was captured: ('by nat REDIRECT in ISTIO_IN_REDIRECT', 'nat/ISTIO_IN_REDIRECT #1: ...')."""
    if t is None:
        return "", ""
    for s in t.steps():
        if s.kind != StepKind.RULE_MATCH or s.rule is None:
            continue
        if s.detail.startswith(("REDIRECT", "TPROXY")):
            kind = "TPROXY" if "TPROXY" in s.detail else "REDIRECT"
            return (
                f"by {s.table} {kind} ({s.table}/{s.chain} rule {s.index} at {s.hook})",
                f"{s.table}/{s.chain} #{s.index}: {s.rule}",
            )
    return "by the kernel delivering it to Envoy's listener", ""


def _failure_code(r: ConnectionResult) -> str:
    t = r.syn
    if r.outcome == "refused":
        return "NO_LISTENER"
    if t is not None and t.disposition in (Disposition.DROPPED, Disposition.REJECTED):
        return "DROPPED"
    if t is not None and t.disposition == Disposition.NO_ROUTE:
        return "NO_ROUTE"
    if t is not None and t.disposition == Disposition.UNSUPPORTED:
        return "UNSUPPORTED"
    if r.synack is not None and r.synack.disposition == Disposition.EXITS_INTERFACE:
        return f"REPLY_ESCAPES_VIA_{r.synack.interface}"
    if r.synack is not None and r.synack.disposition in (Disposition.DROPPED, Disposition.REJECTED):
        return "REPLY_DROPPED"
    return "UPSTREAM_CONNECT_FAILURE" if r.outcome == "error" else "TIMEOUT"


def _finish(direction: str, verdict: dict[str, Any], b: _Builder, what: str) -> Story:
    if direction == "inbound":
        peer = verdict["app_peer_ip"]
        if verdict["loop"]:
            summary = f"{what}: LOOP - Envoy's upstream connection is captured by Envoy again"
        elif verdict["failure"]:
            summary = f"{what}: fails ({verdict['failure']})"
            would = verdict.get("app_would_see") or peer
            if would:
                summary += f"; the application would see {would}"
        elif verdict["app_reached"]:
            summary = f"{what}: the application sees {peer}"
        else:
            summary = f"{what}: the application is not reached"
    else:
        if verdict["loop"]:
            summary = f"{what}: LOOP"
        elif verdict["failure"]:
            summary = f"{what}: fails ({verdict['failure']})"
        else:
            summary = (
                f"{what}: {'via Envoy, ' if verdict['intercepted'] else 'not intercepted, '}the destination "
                f"sees {verdict['destination_peer_ip']}"
            )
    causes = [f for f in b.findings if f.kind == "cause"]
    if causes:
        summary += " - " + causes[-1].text
    return Story(direction, verdict, tuple(b.findings), tuple(b.hops), summary, dict(b.facts))


def with_assumption(story: Story, text: str) -> Story:
    return replace(story, findings=(Finding("assumption", text), *story.findings))
