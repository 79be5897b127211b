"""The story of an outbound connection: application -> pod kernel -> Envoy (outbound listener) -> destination."""

from __future__ import annotations

from typing import Any

from meshviz.engine.envoy.model import EnvoyConfig
from meshviz.engine.sim.connection import Endpoint, connect_from_pod
from meshviz.engine.sim.simulate import Host, Sender, Simulation, host_for
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable
from meshviz.engine.story.build import (
    _Builder,
    _capture_rule,
    _failure_code,
    _finish,
    _kernel_hops,
    _rule_refs,
)
from meshviz.engine.story.context import (
    PodContext,
    _is_envoy,
    _listener_of,
    app_sockets,
    envoy_sockets,
)
from meshviz.engine.story.inbound import (
    _envoy_decide,
)
from meshviz.engine.story.model import Failure, Story

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
    # the snapshot's Host, indexed once for all its stories
    sim = Simulation(host or host_for(snapshot), SocketTable.of(tuple(e_socks + a_socks)))
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
        verdict["failure"], verdict["failure_interface"] = _failure_code(first)
        b.find("cause", f"the application's connection to {dst} fails: {first.detail}", *_rule_refs(first.syn))
        return _finish("outbound", verdict, b, f"application -> {dst}")
    if not _is_envoy(first.accepted_role):
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
    if up.outcome == "connected" and _is_envoy(up.accepted_role):
        verdict["loop"] = True
        verdict["failure"] = Failure.LOOP
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
        verdict["failure"], verdict["failure_interface"] = _failure_code(up)
        b.find("cause", f"Envoy's upstream connection to {target} fails: {up.detail}", *_rule_refs(up.syn))
    return _finish("outbound", verdict, b, f"application -> {dst}")
