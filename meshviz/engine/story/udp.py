"""The story of a UDP datagram a local process sends (a DNS query, typically) and of its answer.

Istio's DNS capture (ISTIO_META_DNS_CAPTURE) redirects port-53 traffic in nat OUTPUT to istio-agent's DNS proxy on
15053, exempts the proxy's own uid/gid so its upstream queries go out, and puts the proxy's UDP in conntrack zones
(raw OUTPUT/PREROUTING) so that its upstream query and the application's redirected one are never the same
connection.  The story: the datagram through the pod's rules and routing to the DNS proxy (or to the server it was
sent to), and the answer back, where conntrack must undo the redirect for the application's connected socket to
take it (the answer must come from the server it asked).
"""

from __future__ import annotations

from typing import Any

from meshviz.engine.core.model import Family, Socket, SocketRole
from meshviz.engine.core.netaddr import parse_ip
from meshviz.engine.core.trace import Disposition
from meshviz.engine.sim.connection import Endpoint
from meshviz.engine.sim.datagram import DatagramResult, send_datagram_from_pod
from meshviz.engine.sim.simulate import Host, Sender, Simulation, host_for
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable
from meshviz.engine.story.build import _Builder, _capture_rule, _finish, _rule_refs
from meshviz.engine.story.context import PodContext
from meshviz.engine.story.model import UDP_ANSWER_TITLE, Failure, Story

#: istio-agent's DNS proxy: Istio binds it to localhost:15053 (udp and tcp), a port its rules redirect to and that
#: no setting changes.
DNS_PROXY_PORT = 15053


def dns_proxy_sockets(ctx: PodContext) -> list[Socket]:
    """istio-agent's DNS proxy: a UDP socket on 127.0.0.1:15053 (and [::1]:15053 for a pod with IPv6), created by
    the sidecar's uid/gid - whose packets `-m owner` / `meta skuid` see."""
    out = []
    for v in sorted({a.version for a in (ctx.pod_ips or (ctx.pod_ip,))}):
        out.append(
            Socket(
                protocol="udp",
                local_port=DNS_PROXY_PORT,
                local_addr=parse_ip("127.0.0.1" if v == 4 else "::1"),
                uid=ctx.proxy_uid,
                gid=ctx.proxy_gid,
                name="DNS proxy (istio-agent)",
                role=SocketRole.DNS_PROXY,
                family=Family.IPV4 if v == 4 else Family.IPV6,
            )
        )
    return out


def _failure(r: DatagramResult) -> tuple[Failure | None, str | None]:
    """Why the datagram or its answer went wrong (None: answered), and the interface an escaping answer takes."""
    if r.outcome == "answered":
        return None, None
    q, back = r.query, r.reply
    if r.outcome == "refused":
        return Failure.NO_LISTENER, None
    if back is None:
        assert q is not None
        if q.disposition in (Disposition.DROPPED, Disposition.REJECTED):
            return Failure.DROPPED, None
        if q.disposition == Disposition.NO_ROUTE:
            return Failure.NO_ROUTE, None
        if q.disposition == Disposition.UNSUPPORTED or r.outcome == "error":
            return Failure.UNSUPPORTED, None
        return Failure.TIMEOUT, None
    if back.disposition == Disposition.UNSUPPORTED:
        return Failure.UNSUPPORTED, None
    if back.disposition in (Disposition.DROPPED, Disposition.REJECTED):
        return Failure.REPLY_DROPPED, None
    if back.disposition == Disposition.EXITS_INTERFACE:
        return Failure.REPLY_ESCAPES, back.interface
    if back.disposition == Disposition.NO_SOCKET:
        return Failure.REPLY_UNMATCHED, None
    return Failure.TIMEOUT, None


def udp_story(
    snapshot: Snapshot,
    ctx: PodContext,
    dst: Endpoint,
    *,
    uid: int,
    gid: int,
    dns_proxy: bool = True,
    assumptions: tuple[str, ...] = (),
    host: Host | None = None,
) -> Story:
    """A process of uid/gid in the pod sends one datagram to `dst` from a connected UDP socket (as a resolver does)
    and waits for the answer.  `dns_proxy`: istio-agent's DNS proxy listens on 15053 (assumed, and said so)."""
    b = _Builder()
    for a in assumptions:
        b.find("assumption", a)
    socks = dns_proxy_sockets(ctx) if dns_proxy else []
    if dns_proxy:
        b.find(
            "assumption",
            f"the sidecar's DNS proxy (istio-agent) listens on udp 127.0.0.1:{DNS_PROXY_PORT}"
            f" as uid {ctx.proxy_uid}/gid {ctx.proxy_gid} and answers every query itself",
        )
    else:
        b.find("assumption", f"no DNS proxy listens on {DNS_PROXY_PORT}")
    sim = Simulation(host or host_for(snapshot), SocketTable.of(tuple(socks)))
    who = f"uid {uid}, gid {gid}"
    name = "the sidecar" if (uid, gid) == (ctx.proxy_uid, ctx.proxy_gid) else "the application"
    what = f"udp {name} ({who}) -> {dst}"
    r = send_datagram_from_pod(sim, dst, Sender(uid=uid, gid=gid, name=f"{name} ({who})"))
    if r.query is not None:
        q = r.query
        b.hop(f"{name}'s datagram to {dst}", "pod-kernel", f"{q.disposition.value} - {q.detail}", trace=q)
    if r.reply is not None:
        rt = r.reply
        b.hop(UDP_ANSWER_TITLE, "pod-kernel", f"{rt.disposition.value} - {rt.detail}", trace=rt)
    failure, iface = _failure(r)
    receiver = r.receiver
    verdict: dict[str, Any] = {
        "intercepted": receiver is not None
        and receiver.role is SocketRole.DNS_PROXY
        and (dst.port, dst.addr) != (receiver.local_port, receiver.local_addr),
        "received_by": None,
        "receiver_peer_ip": None,
        "reply_received": r.outcome == "answered",
        "reply_source": str(r.reply_source) if r.reply_source else None,
        "failure": failure,
        "failure_interface": iface,
    }
    if r.left_pod or receiver is not None:
        verdict["received_by"] = (
            "dns-proxy" if receiver is not None and receiver.role is SocketRole.DNS_PROXY else "destination"
        )
        verdict["receiver_peer_ip"] = str(r.peer_seen.addr) if r.peer_seen else None
    if verdict["intercepted"]:
        rule = _capture_rule(r.query)
        b.find("fact", f"the datagram to {dst} is captured {rule[0]} to the DNS proxy", rule[1])
    elif r.left_pod:
        b.find(
            "fact",
            f"the datagram to {dst} is not captured: it leaves the pod on {r.interface} from {r.peer_seen}",
            *_rule_refs(r.query),
        )
    b.find("cause" if failure is not None else "fact", r.detail, *_rule_refs(r.reply))
    b.facts["datagram"] = {
        "outcome": r.outcome,
        "sender_local": str(r.sender_local) if r.sender_local else None,
        "receiver": receiver.describe() if receiver is not None else None,
        "peer_seen": str(r.peer_seen) if r.peer_seen else None,
        "errno": r.errno,
    }
    return _finish("udp", verdict, b, what)
