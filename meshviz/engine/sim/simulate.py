"""Follow one packet through a pod's kernel, hook by hook, as Linux does.

Order (IPv4 and IPv6 alike, by hook priority):

* received: raw PREROUTING -> conntrack -> mangle PREROUTING -> nat PREROUTING
  (DNAT; rules only for a connection's first packet) -> routing decision ->
  INPUT (mangle, filter, security, nat SNAT) -> socket, or FORWARD (mangle,
  filter, security) -> POSTROUTING (mangle, nat) -> out.
* sent by a local process: routing decision (with the socket's mark, bound
  address and uid) -> raw OUTPUT -> conntrack -> mangle OUTPUT (re-route when
  the mark, addresses or TOS changed) -> nat OUTPUT (re-route when the
  destination changed) -> filter OUTPUT -> security OUTPUT -> POSTROUTING
  (mangle, nat) -> out of the device; `lo` loops the packet back into
  PREROUTING keeping its mark, its conntrack entry and its route.

A `Simulation` holds the mutable state (conntrack table, sockets) so that
several packets (a handshake) can be simulated in sequence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from meshviz.engine.core.limits import MAX_PATHS, paths_reached
from meshviz.engine.core.model import CtDirection, CtState, Family, IPAddress, Packet, Socket, SocketRole
from meshviz.engine.core.trace import Disposition, Hop, Step, StepAction, StepKind, Trace
from meshviz.engine.netfilter.conntrack import ConntrackTable, CtEntry, Tuple5, classify_new
from meshviz.engine.netfilter.model import Rule
from meshviz.engine.netfilter.walk import CompiledRuleset, TableVerdict, WalkBudget, walk_table
from meshviz.engine.nftables.evaluate import BaseChain, walk_base_chain
from meshviz.engine.nftables.hooks import NftHooks
from meshviz.engine.routing.flow import Flow, RouteDecision
from meshviz.engine.routing.input import route_input
from meshviz.engine.routing.model import Interface, Route, RouteType
from meshviz.engine.routing.output import route_output
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable

MAX_LOOPBACK_PASSES = 8
MAX_BRANCHES = MAX_PATHS

LOCAL_TYPES = (RouteType.LOCAL, RouteType.BROADCAST, RouteType.MULTICAST)


class Host:
    """A snapshot compiled for simulation (immutable; share it between simulations)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.compiled: dict[Family, CompiledRuleset] = {rs.family: CompiledRuleset(rs) for rs in snapshot.rulesets}
        # nft base chains by hook, run between iptables' tables (iptables-nft's own tables once, from iptables-save)
        self.nft = NftHooks(snapshot.nftables, iptables_given=bool(snapshot.rulesets))

    def interface(self, name: str | None) -> Interface | None:
        return self.snapshot.interface(name) if name else None

    def is_loopback(self, dev: str | None) -> bool:
        if dev is None:
            return False
        i = self.interface(dev)
        return i.loopback if i is not None else dev == "lo"

    def primary_address(self, dev: str | None, family: Family) -> IPAddress | None:
        i = self.interface(dev)
        if i is None:
            return None
        for a in i.addresses:
            if Family.of(a) == family:
                return a
        return None

    def local_routes(self) -> list[Route]:
        return [r for r in self.snapshot.routing.routes if r.type in (RouteType.LOCAL, RouteType.BROADCAST)]

    def addr_type(self, addr: IPAddress, iface: str | None, limit: bool) -> str:
        if addr.is_multicast:
            return "MULTICAST"
        if addr.is_unspecified:
            return "UNSPEC"
        best: Route | None = None
        for r in self.local_routes():
            if (
                r.dst.version == addr.version
                and addr in r.dst
                and (best is None or r.dst.prefixlen > best.dst.prefixlen)
            ):
                best = r
        if best is not None and (not limit or best.dev == iface or best.type == RouteType.BROADCAST):
            return "LOCAL" if best.type == RouteType.LOCAL else "BROADCAST"
        for i in self.snapshot.interfaces:
            if addr in i.addresses and (not limit or i.name == iface):
                return "LOCAL"
        return "UNICAST"


@dataclass(frozen=True)
class Sender:
    """The local socket a packet is sent from."""

    uid: int | None = 0
    gid: int | None = 0
    mark: int = 0
    transparent: bool = False
    bound_dev: str | None = None
    name: str = "process"

    def connected_socket(
        self,
        protocol: str,
        local_addr: IPAddress,
        local_port: int,
        remote_addr: IPAddress,
        remote_port: int,
        name: str,
        role: SocketRole = SocketRole.OTHER,
    ) -> Socket:
        """The socket this sender connects from (local) to (remote): its SO_MARK, IP_TRANSPARENT and owner."""
        return Socket(
            protocol=protocol,
            local_port=local_port,
            local_addr=local_addr,
            remote_addr=remote_addr,
            remote_port=remote_port,
            mark=self.mark,
            transparent=self.transparent,
            uid=self.uid,
            gid=self.gid,
            name=name,
            role=role,
        )


@dataclass
class Simulation:
    host: Host
    sockets: SocketTable
    conntrack: ConntrackTable = field(default_factory=ConntrackTable)
    decisions: list[bool] = field(default_factory=list)  # prescribed outcomes of branch points
    branch_log: list[str] = field(default_factory=list)
    n_choices: int = 0

    def copy_state(self) -> Simulation:
        import copy

        return Simulation(self.host, self.sockets.copy(), copy.deepcopy(self.conntrack))

    # ---- entry points ---------------------------------------------------

    def receive(self, packet: Packet, iface: str) -> Trace:
        """A packet arrives from the network on `iface`."""
        p = replace(packet, in_iface=iface, out_iface=None, uid=None, gid=None, ctstate=None)
        j = _Journey(self, p)
        return j.run_received()

    def send(self, packet: Packet, sender: Sender) -> Trace:
        """A local process sends `packet` (src unspecified = let the kernel choose)."""
        p = replace(
            packet, in_iface=None, out_iface=None, uid=sender.uid, gid=sender.gid, mark=sender.mark, ctstate=None
        )
        j = _Journey(self, p)
        return j.run_sent(sender)

    # ---- branches -------------------------------------------------------

    def choose(self, what: str) -> bool:
        i = self.n_choices
        self.n_choices += 1
        taken = self.decisions[i] if i < len(self.decisions) else False
        self.branch_log.append(f"{what}: {'matched' if taken else 'not matched'}")
        return taken


def explore(run: Callable[[Simulation], Trace], base: Simulation, max_branches: int = MAX_BRANCHES) -> list[Trace]:
    """Run `run` once per combination of branch outcomes (statistic matches).

    Each run gets a fresh copy of the base state.  Deterministic rulesets give
    exactly one trace.
    """
    traces: list[Trace] = []
    stack: list[list[bool]] = [[]]
    while stack and len(traces) < max_branches:
        prefix = stack.pop()
        sim = base.copy_state()
        sim.decisions = list(prefix)
        t = run(sim)
        traces.append(t)
        full = prefix + [False] * (sim.n_choices - len(prefix))
        for i in range(sim.n_choices - 1, len(prefix) - 1, -1):
            stack.append([*full[:i], True])
    if stack:
        # More paths than the budget: say so in a named step at the end of the last trace shown.
        limit = paths_reached(max_branches)
        step = Step(StepKind.LIMIT, StepAction.UNSUPPORTED, str(limit))
        last = traces[-1]
        traces[-1] = replace(last, hops=(*last.hops, Hop(node="pod", name="simulation limit", steps=(step,))))
    return traces


# --------------------------------------------------------------------------
# One packet's journey
# --------------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, disposition: Disposition, detail: str, **kw: object):
        super().__init__(detail)
        self.disposition = disposition
        self.detail = detail
        self.extra = kw


class _Journey:
    """Implements the netfilter `Journey`/`EvalEnv` callbacks for one packet."""

    def __init__(self, sim: Simulation, packet: Packet):
        self.sim = sim
        self.host = sim.host
        self.packet = packet
        self.start = packet
        self.hook = ""
        self.hops: list[Hop] = []
        self.steps: list[Step] = []
        self.assumptions: list[str] = []
        self.ct: CtEntry | None = None
        self.ct_dir = CtDirection.ORIGINAL
        self.zone = 0
        self.notrack = False
        self.assigned: Socket | None = None
        self.route: RouteDecision | None = None
        self.loop_passes = 0
        self.sent_dst: tuple[IPAddress, int] | None = None
        self.budget = WalkBudget()  # rule evaluations of this packet's trace (`limits.py`)
        self.nat_made = False  # a NAT lookup set up a binding (the NAT core stops there)

    # ---- EvalEnv ----

    def choose(self, rule: Rule, what: str) -> bool:
        taken = self.sim.choose(f"{rule.table}/{rule.chain}: {what}")
        self.steps.append(
            Step(
                StepKind.BRANCH,
                StepAction.CHOOSE,
                f"{what}: this trace takes the {'matching' if taken else 'non-matching'} branch",
                hook=self.hook,
                table=rule.table,
                chain=rule.chain,
            )
        )
        return taken

    def socket_match(self, packet: Packet, transparent: bool, nowildcard: bool, restore_skmark: bool) -> bool:
        st = self.sim.sockets
        sk = self.assigned
        if sk is None:
            if not st.known:
                if packet.ctstate in (CtState.NEW, None):
                    self._assume(
                        "no socket table given: assuming no socket matches a new connection's packet "
                        "(-m socket ignores wildcard listeners)"
                    )
                    return False
                from meshviz.engine.netfilter.matches import Unmodelled

                raise Unmodelled("-m socket on a packet of an existing connection needs the pod's socket table")
            sk = st.lookup(packet.protocol, packet.src, packet.sport, packet.dst, packet.dport)
        if sk is None:
            return False
        wildcard = not nowildcard and sk.local_addr is None
        ok_transparent = sk.transparent if transparent else True
        if restore_skmark and not wildcard and ok_transparent:
            self.set_mark(sk.mark)
        return not wildcard and ok_transparent

    def addr_type(self, addr: IPAddress, iface: str | None, limit_to_iface: bool) -> str:
        return self.host.addr_type(addr, iface, limit_to_iface)

    # ---- Journey (targets) ----

    def set_mark(self, mark: int) -> None:
        self.packet = replace(self.packet, mark=mark)

    def ct_mark(self) -> int | None:
        return self.ct.mark if self.ct is not None else None

    def set_ct_mark(self, mark: int) -> None:
        if self.ct is not None:
            self.ct.mark = mark
            self.packet = replace(self.packet, ctmark=mark)

    def set_ct_zone(self, zone: int) -> None:
        if self.ct is not None:
            # xt_CT / nft_ct_set_zone_eval: a packet that already has a conntrack entry (looped back) keeps it.
            self.steps.append(
                Step(
                    StepKind.CONNTRACK,
                    StepAction.CONTINUE,
                    f"the packet already has conntrack entry #{self.ct.ident} (it looped back): zone {zone} is not set",
                    hook=self.hook,
                )
            )
            return
        self.zone = zone

    def set_notrack(self) -> None:
        self.notrack = True

    def redirect_address(self) -> IPAddress | None:
        fam = self.packet.family
        if self.hook == "OUTPUT":
            return ipaddress.ip_address("127.0.0.1" if fam == Family.IPV4 else "::1")
        return self.host.primary_address(self.packet.in_iface, fam)

    def masquerade_address(self) -> IPAddress | None:
        # nf_nat_masquerade_ipv4: inet_select_addr(out_dev, gateway, RT_SCOPE_UNIVERSE) - an address of the
        # outgoing device, never the route's preferred source.
        return self.host.primary_address(self.packet.out_iface, self.packet.family)

    def nat(self, manip: str, addr: IPAddress | None, port: int | None, what: str) -> Packet | str:
        e = self.ct
        if e is None:
            return f"{what}: packet has no conntrack entry"
        self.nat_made = True
        p = self.packet
        if manip == "DST":
            new_addr = addr if addr is not None else p.dst
            new_port = port if port is not None else p.dport
            e.reply = Tuple5(e.reply.protocol, new_addr, new_port, e.reply.dst, e.reply.dport)
            e.dst_nat = (new_addr, new_port) != (e.original.dst, e.original.dport)
            self.packet = replace(p, dst=new_addr, dport=new_port)
        else:
            new_addr = addr if addr is not None else p.src
            new_port = port if port is not None else p.sport
            e.reply = Tuple5(e.reply.protocol, e.reply.src, e.reply.sport, new_addr, new_port)
            e.src_nat = (new_addr, new_port) != (e.original.src, e.original.sport)
            self.packet = replace(p, src=new_addr, sport=new_port)
        return self.packet

    def tproxy(self, on_ip: IPAddress | None, on_port: int, mark: int, mask: int) -> tuple[bool, str]:
        p = self.packet
        st = self.sim.sockets
        laddr = on_ip or self.host.primary_address(p.in_iface, p.family) or p.dst
        new_mark = (p.mark & ~mask & 0xFFFFFFFF) ^ mark
        if not st.known:
            self._assume(f"no socket table given: assuming a transparent (IP_TRANSPARENT) listener on port {on_port}")
            self.packet = replace(p, mark=new_mark)
            self.assigned = Socket(
                protocol=p.protocol,
                local_port=on_port,
                local_addr=None,
                transparent=True,
                name=f"assumed transparent listener :{on_port}",
                family=p.family,
            )
            return True, f"TPROXY to {laddr}:{on_port} (assumed listener), mark {p.mark:#x} -> {new_mark:#x}"
        sk = st.established(p.protocol, p.dst, p.dport, p.src, p.sport)
        if sk is None:
            sk = st.listener(p.protocol, laddr, on_port)
        if sk is None:
            return False, f"TPROXY: no socket listens on {laddr}:{on_port}: the kernel drops the packet"
        if not sk.transparent:
            return False, (
                f"TPROXY: {sk.describe()} is not transparent (IP_TRANSPARENT unset): the kernel drops the packet"
            )
        self.packet = replace(p, mark=new_mark)
        self.assigned = sk
        return True, f"TPROXY: assigned to {sk.describe()}, mark {p.mark:#x} -> {new_mark:#x}"

    # ---- helpers ----

    def _assume(self, text: str) -> None:
        if text not in self.assumptions:
            self.assumptions.append(text)
            self.steps.append(Step(StepKind.ASSUMPTION, StepAction.ASSUME, text, hook=self.hook or None))

    def _hop(self, name: str) -> None:
        if self.steps:
            self._flush()
        self.current_hop = name

    def _flush(self) -> None:
        name = getattr(self, "current_hop", "start")
        self.hops.append(Hop(node="pod", name=name, steps=tuple(self.steps)))
        self.steps = []

    def _finish(self, disposition: Disposition, detail: str, **kw: object) -> Trace:
        self._flush()
        return Trace(
            packet=self.start,
            hops=tuple(h for h in self.hops if h.steps),
            disposition=disposition,
            detail=detail,
            final_packet=self.packet,
            socket=kw.get("socket") if isinstance(kw.get("socket"), str) else None,  # type: ignore[arg-type]
            interface=kw.get("interface") if isinstance(kw.get("interface"), str) else None,  # type: ignore[arg-type]
            branch=tuple(self.sim.branch_log),
            assumptions=tuple(self.assumptions),
        )

    def _tables(self, hook: str, tables: tuple[str, ...]) -> None:
        """Run the given tables at a hook; raises _Stop on a terminal verdict."""
        self.hook = hook
        crs = self.host.compiled.get(self.packet.family)
        for table in self.host.nft.plan(self.packet.family, hook, tables):
            if isinstance(table, BaseChain):
                self._verdict(walk_base_chain(table, hook, self, self.steps, self.budget), table.label, hook)
                continue
            if table == "nat":
                self._nat_hook(hook, crs)
                continue
            if table == "conntrack":
                self._conntrack(hook)
                continue
            if crs is None:
                continue
            v = walk_table(crs, table, hook, self, self.steps, self.budget)
            self._verdict(v, table, hook)

    def _verdict(self, v: TableVerdict, table: str, hook: str) -> None:
        if v.verdict == "ACCEPT":
            return
        if v.verdict == "DROP":
            raise _Stop(Disposition.DROPPED, v.detail)
        if v.verdict == "REJECT":
            raise _Stop(Disposition.REJECTED, f"{v.detail} ({v.reject_with})", reject_with=v.reject_with)
        raise _Stop(Disposition.UNSUPPORTED, v.detail)

    # ---- conntrack ----

    def _conntrack(self, hook: str) -> None:
        if self.ct is not None:
            # Looped-back packet: the skb keeps its conntrack entry (nf_conntrack_in ignores it).
            return
        if self.notrack:
            self.packet = replace(self.packet, ctstate=CtState.UNTRACKED)
            self.steps.append(Step(StepKind.CONNTRACK, StepAction.CONTINUE, "untracked (NOTRACK)", hook=hook))
            return
        found = self.sim.conntrack.lookup(self.packet, self.zone)
        if found is None:
            state = classify_new(self.packet)
            if state == CtState.INVALID:
                self.packet = replace(self.packet, ctstate=CtState.INVALID, ctmark=0)
                self.steps.append(
                    Step(
                        StepKind.CONNTRACK,
                        StepAction.CONTINUE,
                        "no connection for this packet and it cannot start one: INVALID",
                        hook=hook,
                    )
                )
                return
            e = self.sim.conntrack.new_entry(self.packet, self.zone)
            self.ct, self.ct_dir = e, CtDirection.ORIGINAL
            self.packet = replace(self.packet, ctstate=CtState.NEW, ctdir=CtDirection.ORIGINAL, ctmark=0)
            zone = f" (zone {self.zone})" if self.zone else ""
            self.steps.append(Step(StepKind.CONNTRACK, StepAction.CONTINUE, f"new connection{zone}: NEW", hook=hook))
            return
        e, d = found
        self.ct, self.ct_dir = e, d
        if d == CtDirection.REPLY:
            e.seen_reply = True
        state = CtState.ESTABLISHED if (d == CtDirection.REPLY or e.seen_reply) else CtState.NEW
        self.packet = replace(self.packet, ctstate=state, ctdir=d, ctmark=e.mark)
        self.steps.append(
            Step(
                StepKind.CONNTRACK,
                StepAction.CONTINUE,
                f"{d.value.lower()} direction of connection {e.describe()}: {state.value}",
                hook=hook,
            )
        )

    def _confirm(self) -> None:
        if self.ct is not None:
            self.sim.conntrack.confirm(self.ct)

    # ---- nat ----

    def _nat_hook(self, hook: str, crs: CompiledRuleset | None) -> None:
        manip = "DST" if hook in ("PREROUTING", "OUTPUT") else "SRC"
        e = self.ct
        if e is None or self.packet.ctstate in (CtState.UNTRACKED, CtState.INVALID):
            return
        done = e.nat_dst_done if manip == "DST" else e.nat_src_done
        if not done and self.ct_dir == CtDirection.ORIGINAL and self.packet.ctstate == CtState.NEW:
            # iptables' nat table and nft's NAT chains, in priority order, until one sets up a binding.
            for lookup in self.host.nft.nat_lookups(self.packet.family, hook):
                self.nat_made = False
                if isinstance(lookup, BaseChain):
                    self._verdict(walk_base_chain(lookup, hook, self, self.steps, self.budget), lookup.label, hook)
                elif crs is not None:
                    self._verdict(walk_table(crs, "nat", hook, self, self.steps, self.budget), "nat", hook)
                if self.nat_made:
                    break
            if manip == "DST":
                e.nat_dst_done = True
            else:
                e.nat_src_done = True
            return
        # Existing binding: rewrite this packet the way the connection's NAT says.
        p = self.packet
        before = (p.src, p.sport, p.dst, p.dport)
        if manip == "DST":
            if self.ct_dir == CtDirection.ORIGINAL and e.dst_nat:
                p = replace(p, dst=e.reply.src, dport=e.reply.sport)
            elif self.ct_dir == CtDirection.REPLY and e.src_nat:
                p = replace(p, dst=e.original.src, dport=e.original.sport)
        else:
            if self.ct_dir == CtDirection.ORIGINAL and e.src_nat:
                p = replace(p, src=e.reply.dst, sport=e.reply.dport)
            elif self.ct_dir == CtDirection.REPLY and e.dst_nat:
                p = replace(p, src=e.original.dst, sport=e.original.dport)
        if (p.src, p.sport, p.dst, p.dport) != before:
            self.packet = p
            self.steps.append(
                Step(
                    StepKind.TRANSFORMATION,
                    StepAction.TRANSFORM,
                    f"conntrack NAT of connection #{e.ident}: now {p.describe()}",
                    hook=hook,
                    table="nat",
                    packet=p,
                )
            )

    # ---- routing ----

    def _route_step(self, d: RouteDecision, what: str) -> None:
        action = StepAction.ROUTED if d.ok else StepAction.NO_ROUTE
        if d.ok:
            kind = d.type.value if d.type else "?"
            via = f" via {d.gateway}" if d.gateway else ""
            table = f" table {d.table}" if d.table is not None else ""
            detail = f"{what}: {kind} route{table}, dev {d.dev}{via}"
            if d.src is not None and what.startswith("output"):
                detail += f", source {d.src}"
        else:
            detail = f"{what}: {d.error}"
        if d.explanation:
            detail += " — " + "; ".join(d.explanation)
        rule = d.rule
        self.steps.append(
            Step(
                StepKind.ROUTING_LOOKUP,
                action,
                detail,
                hook=self.hook or None,
                rule=(rule.ref.text if rule is not None and rule.ref is not None else None),
                source=(rule.ref.source if rule is not None and rule.ref is not None else None),
                line=(rule.ref.line if rule is not None and rule.ref is not None else None),
            )
        )

    def _route_output(self, sender: Sender | None, src_given: bool) -> RouteDecision:
        p = self.packet
        flow = Flow(
            dst=p.dst,
            src=p.src if src_given else None,
            mark=p.mark,
            oif=sender.bound_dev if sender else None,
            uid=p.uid,
            protocol=p.protocol,
            sport=p.sport,
            dport=p.dport,
            nonlocal_src_ok=bool(sender.transparent) if sender else True,
        )
        return route_output(self.host.snapshot, flow)

    # ---- the two paths ----

    def run_received(self) -> Trace:
        try:
            self._hop("PREROUTING")
            self._received_path()
        except _Stop as s:
            return self._finish(s.disposition, s.detail, **s.extra)
        raise AssertionError("unreachable")

    def _netdev(self, hook: str, dev: str | None) -> None:
        """nft's netdev `ingress`/`egress` base chains on `dev` (or on no named device) run before PREROUTING and
        after POSTROUTING; they are not simulated: each is a named assumption step, never a silent skip."""
        for bc in self.host.nft.unmodelled:
            c = bc.chain
            if bc.table.family != "netdev" or c.hook != hook or (c.device is not None and c.device != dev):
                continue
            self._assume(
                f"nft chain {bc.table.label} {c.name} (netdev {hook}, device {c.device or 'any'}, policy "
                f"{c.policy or 'accept'}) is not simulated (UNSUPPORTED): the packet is assumed to pass it"
            )

    def _received_path(self) -> None:
        self._netdev("ingress", self.packet.in_iface)
        dst_before = (self.packet.dst, self.packet.dport)
        self._tables("PREROUTING", ("raw", "conntrack", "mangle", "nat"))
        # Routing decision.  A looped-back packet keeps the route it left with
        # unless PREROUTING changed its destination.
        self._hop("routing decision (input)")
        self.hook = ""
        looped = (
            self.route is not None and self.packet.in_iface is not None and self.host.is_loopback(self.packet.in_iface)
        )
        if looped and self.route is not None and (self.packet.dst, self.packet.dport) == dst_before:
            d = self.route
            self.steps.append(
                Step(
                    StepKind.ROUTING_LOOKUP,
                    StepAction.ROUTED,
                    f"looped-back packet keeps its output route ({d.type.value if d.type else '?'}"
                    f" via {d.dev}); no input lookup",
                )
            )
        else:
            p = self.packet
            d = route_input(
                self.host.snapshot,
                Flow(
                    dst=p.dst, src=p.src, mark=p.mark, iif=p.in_iface, protocol=p.protocol, sport=p.sport, dport=p.dport
                ),
            )
            self._route_step(d, f"input lookup for {p.dst} from {p.src} on {p.in_iface}, mark {p.mark:#x}")
            if not d.ok:
                code = d.error or "no route"
                if code.startswith("MARTIAN") or code == "RP_FILTER":
                    raise _Stop(Disposition.DROPPED, f"input routing drops the packet: {code}")
                raise _Stop(Disposition.NO_ROUTE, f"input routing: {code}")
        if d.type in LOCAL_TYPES:
            self._local_in()
        else:
            self._forward(d)

    def _local_in(self) -> None:
        self._hop("INPUT")
        self._tables("INPUT", ("mangle", "filter", "security", "nat"))
        self._confirm()
        self._hop("socket lookup")
        self.hook = ""
        self._deliver()

    def _deliver(self) -> None:
        p = self.packet
        st = self.sim.sockets
        where = f"{p.dst}:{p.dport}" if p.dport else str(p.dst)
        if p.protocol not in ("tcp", "udp"):
            raise _Stop(Disposition.DELIVERED_LOCAL, f"delivered to the local {p.protocol} stack at {p.dst}")
        if self.assigned is not None:
            sk = self.assigned
            self.steps.append(
                Step(StepKind.SOCKET_LOOKUP, StepAction.FOUND, f"socket assigned by TPROXY: {sk.describe()}")
            )
            raise _Stop(
                Disposition.ACCEPTED_TO_SOCKET,
                f"accepted by {sk.describe()} (assigned by TPROXY)",
                socket=sk.describe(),
            )
        if not st.known:
            self._assume("no socket table given: the packet reaches local input; which socket takes it is unknown")
            raise _Stop(Disposition.DELIVERED_LOCAL, f"delivered locally to {where}")
        found = st.established(p.protocol, p.dst, p.dport, p.src, p.sport)
        how = "established socket"
        if found is None:
            found = st.listener(p.protocol, p.dst, p.dport)
            how = "listening socket"
        if found is None:
            self.steps.append(
                Step(
                    StepKind.SOCKET_LOOKUP,
                    StepAction.NOT_FOUND,
                    f"no socket for {where}: the kernel answers with "
                    f"{'a TCP RST' if p.protocol == 'tcp' else 'ICMP port unreachable'}",
                )
            )
            raise _Stop(Disposition.NO_SOCKET, f"nothing listens on {where}")
        self.steps.append(Step(StepKind.SOCKET_LOOKUP, StepAction.FOUND, f"{how}: {found.describe()}"))
        raise _Stop(Disposition.ACCEPTED_TO_SOCKET, f"accepted by {found.describe()}", socket=found.describe())

    def _forward(self, d: RouteDecision) -> None:
        self._hop("FORWARD")
        self.packet = replace(self.packet, out_iface=d.dev)
        self._tables("FORWARD", ("mangle", "filter", "security"))
        self._postrouting()
        self._confirm()
        raise _Stop(
            Disposition.FORWARDED,
            f"forwarded out of {d.dev}" + (f" via {d.gateway}" if d.gateway else ""),
            interface=d.dev,
        )

    def _postrouting(self) -> None:
        self._hop("POSTROUTING")
        self._tables("POSTROUTING", ("mangle", "nat"))

    def run_sent(self, sender: Sender) -> Trace:
        try:
            self._sent_path(sender)
        except _Stop as s:
            return self._finish(s.disposition, s.detail, **s.extra)
        raise AssertionError("unreachable")

    def _sent_path(self, sender: Sender) -> None:
        self._hop("routing decision (output)")
        p = self.packet
        src_given = not p.src.is_unspecified
        d = self._route_output(sender, src_given)
        self._route_step(
            d, f"output lookup for {p.dst}, mark {p.mark:#x}" + (f", uid {p.uid}" if p.uid is not None else "")
        )
        if not d.ok:
            raise _Stop(Disposition.NO_ROUTE, f"the socket cannot send: {d.error}")
        self.route = d
        if not src_given and d.src is not None:
            self.packet = replace(self.packet, src=d.src)
        self.packet = replace(self.packet, out_iface=d.dev)
        self.start = replace(self.start, src=self.packet.src)
        self._hop("OUTPUT")
        self._tables("OUTPUT", ("raw", "conntrack"))
        before = (self.packet.src, self.packet.dst, self.packet.mark)
        self._tables("OUTPUT", ("mangle",))
        if (self.packet.src, self.packet.dst, self.packet.mark) != before:
            self._reroute(sender, "mangle OUTPUT changed the packet")
        dst_before = (self.packet.dst, self.packet.dport)
        self._tables("OUTPUT", ("nat",))
        if (self.packet.dst, self.packet.dport) != dst_before:
            self._reroute(sender, "nat OUTPUT changed the destination")
        self._tables("OUTPUT", ("filter", "security"))
        self._postrouting()
        self._confirm()
        self._out_device(sender)

    def _reroute(self, sender: Sender | None, why: str) -> None:
        # ip_route_me_harder: a local or unicast source is kept (FLOWI_FLAG_ANYSRC).
        d = self._route_output(sender, True)
        self._route_step(d, f"re-route ({why}) for {self.packet.dst}, mark {self.packet.mark:#x}")
        if not d.ok:
            raise _Stop(Disposition.DROPPED, f"re-routing failed ({d.error}): the kernel drops the packet")
        self.route = d
        self.packet = replace(self.packet, out_iface=d.dev)

    def _out_device(self, sender: Sender | None) -> None:
        d = self.route
        assert d is not None
        dev = self.packet.out_iface
        self._netdev("egress", dev or "lo")
        if d.type in LOCAL_TYPES or self.host.is_loopback(dev):
            self.loop_passes += 1
            if self.loop_passes > MAX_LOOPBACK_PASSES:
                raise _Stop(Disposition.LOOP, "the packet keeps looping through lo")
            self._hop("lo (loopback)")
            self.steps.append(
                Step(
                    StepKind.LOOPBACK,
                    StepAction.CONTINUE,
                    f"sent on {dev or 'lo'}: loops back into PREROUTING with mark "
                    f"{self.packet.mark:#x} and its conntrack entry; the socket owner is dropped",
                )
            )
            self.packet = replace(self.packet, in_iface=dev or "lo", out_iface=None, uid=None, gid=None)
            self._hop("PREROUTING")
            self._received_path()
            return
        via = f" via {d.gateway}" if d.gateway else ""
        self._hop(f"{dev} (egress)")
        self.steps.append(Step(StepKind.EXITS, StepAction.EXIT, f"leaves the pod on {dev}{via}"))
        raise _Stop(Disposition.EXITS_INTERFACE, f"leaves the pod on {dev}{via}", interface=dev)


#: The Host of the last few snapshots (indexing a node-sized ruleset's chains takes most of a second).
_HOSTS: list[tuple[Snapshot, Host]] = []


def host_for(snapshot: Snapshot) -> Host:
    """The compiled Host for a snapshot, compiled once and kept for the last few snapshots."""
    for snap, host in _HOSTS:
        if snap is snapshot:
            return host
    host = Host(snapshot)
    _HOSTS.append((snapshot, host))
    del _HOSTS[:-8]
    return host
