"""The story of an inbound connection: client -> pod kernel -> Envoy (inbound listener) -> application, and back."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core.model import IPAddress, SocketRole
from meshviz.engine.core.trace import Disposition
from meshviz.engine.envoy.clusters import cluster_for
from meshviz.engine.envoy.filter_chains import ConnInfo, select_filter_chain
from meshviz.engine.envoy.listeners import handoff
from meshviz.engine.envoy.model import EnvoyConfig, Listener
from meshviz.engine.envoy.upstream import upstream_binding, upstream_target
from meshviz.engine.netfilter.render import rule_text
from meshviz.engine.nftables.profile import restores_ct_mark
from meshviz.engine.routing.model import RuleAction
from meshviz.engine.sim.connection import ConnectionResult, Endpoint, connect_from_network, connect_from_pod
from meshviz.engine.sim.simulate import Host, Sender, Simulation, host_for
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable
from meshviz.engine.story.build import (
    _Builder,
    _capture_rule,
    _failure_code,
    _finish,
    _kernel_hops,
    _reply_path,
    _rule_refs,
)
from meshviz.engine.story.context import (
    PodContext,
    _is_envoy,
    _listener_of,
    app_sockets,
    envoy_sockets,
    ingress_interface,
)
from meshviz.engine.story.model import Failure, Story


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
        verdict["failure"] = Failure.NO_ROUTE
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
    # the snapshot's Host, indexed once for all its stories
    sim = Simulation(host or host_for(snapshot), SocketTable.of(tuple(e_socks + a_socks)))
    dst = Endpoint(pod_ip, port)
    b.facts["ingress_interface"] = iface

    first = connect_from_network(sim, client, dst, iface)
    _kernel_hops(b, first, f"client {client} -> {dst} (arrives on {iface})", "client SYN")
    verdict["client_connected"] = first.outcome == "connected"
    if first.outcome != "connected":
        verdict["failure"], verdict["failure_interface"] = _failure_code(first)
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
        if first.accepted_by is not None and not _is_envoy(first.accepted_role) and first.peer_seen is not None:
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
    if _is_envoy(first.accepted_role) and not capture[1]:
        # Not diverted: the client reached one of Envoy's own listeners on its real port (health, metrics...).
        b.find(
            "cause",
            f"port {port} is not intercepted: {first.accepted_by} listens on it itself and accepts the client "
            f"directly ({client} is what it sees)",
            *_rule_refs(first.syn),
        )
        return _finish("inbound", verdict, b, f"{client} -> {dst}")
    if not _is_envoy(first.accepted_role):
        verdict["app_reached"] = first.accepted_role is SocketRole.APPLICATION
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
    failure: Failure | None = None  # NO_FILTER_CHAIN | DOWNSTREAM_TLS_REQUIRED | NO_CLUSTER | NO_HEALTHY_UPSTREAM
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
        d.failure = Failure.NO_FILTER_CHAIN
        d.failure_text = f"Envoy's listener {final.name} has no filter chain for {orig_dst}: it closes the connection"
        return d
    if sel.chain.transport_socket == "tls" and not client_tls:
        d.failure = Failure.DOWNSTREAM_TLS_REQUIRED
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
        d.failure = Failure.NO_CLUSTER
        d.failure_text = (
            f"filter chain {sel.chain.label} of {final.name} names cluster {cs.cluster_name!r}, which the config "
            "does not have (503 NC)"
        )
        return d
    utarget = upstream_target(cluster, (orig_dst.addr, orig_dst.port))
    d.steps.extend(utarget.explanation)
    ut = utarget.as_tuple()
    if ut is None:
        d.failure = Failure.NO_HEALTHY_UPSTREAM
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
        verdict["failure"] = Failure.EPERM_TRANSPARENT
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
    if up.outcome == "connected" and _is_envoy(up.accepted_role):
        verdict["loop"] = True
        verdict["failure"] = Failure.LOOP
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
        if _is_envoy(up.accepted_role):
            rule = _capture_rule(up.syn)
            verdict["failure"], verdict["failure_interface"] = Failure.REPLY_ESCAPES, iface
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
        verdict["failure"], verdict["failure_interface"] = Failure.REPLY_ESCAPES, iface
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
    verdict["failure"] = Failure.UPSTREAM_CONNECT_FAILURE if up.outcome != "left_pod" else None
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
                return rule_text(r).strip()
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
