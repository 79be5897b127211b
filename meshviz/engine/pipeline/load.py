"""Evidence text in, one Snapshot out: every piece parsed, what is missing replaced by the kernel's defaults and
the replacement stated in `Snapshot.assumptions` (never a silent guess).

    result = load_snapshot(iptables=text, ip_rule=..., ip_route=..., sysctl=..., pod_ip="10.0.0.10")
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from meshviz.engine.core.defaults import DEFAULT_POD_IFACE
from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family, IPAddress, Socket
from meshviz.engine.evidence.kinds import EVIDENCE_SOURCES
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.nftables.hooks import is_iptables_nft
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.pipeline.rulescache import iptables_once
from meshviz.engine.routing.addr import parse_ip_addr
from meshviz.engine.routing.defaults import (
    default_policy_rules,
    default_routing,
    interfaces_from_routes,
    with_default_rules,
)
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import Interface, PolicyRule, Route, RoutingConfig, Sysctls
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.snapshot import Snapshot


@dataclass(frozen=True)
class LoadResult:
    snapshot: Snapshot
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_snapshot(
    iptables: str | None = None,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    *,
    ip6tables: str | None = None,
    ip6_rule: str | None = None,
    ip6_route: str | None = None,
    addr: str | None = None,
    nftables: str | None = None,
    pod_ip: str | IPAddress | None = None,
    sockets: tuple[Socket, ...] | None = None,
    sources: dict[str, str] | None = None,
    strict: bool = True,
) -> LoadResult:
    """Parse every piece of evidence given and assemble a Snapshot.

    IPv6 evidence comes beside the IPv4 one: `ip6tables` (ip6tables-save), `ip6_rule` (`ip -6 rule`) and
    `ip6_route` (`ip -6 route show table all`); `addr` is optional `ip -o addr` / `ip addr` output.  `nftables` is
    `nft list ruleset` (or `nft -j list ruleset`, or an `nft -f` script): its base chains run beside iptables'
    tables, interleaved by priority (meshviz.engine.nftables).
    """
    src = dict(EVIDENCE_SOURCES)
    src.update(sources or {})
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    assumptions: list[str] = []

    rulesets: tuple[Ruleset, ...] = ()
    if iptables is not None:
        r = iptables_once(iptables, source=src["iptables"], strict=strict)
        rulesets = r.rulesets
        errors += r.errors
        warnings += r.warnings
    if ip6tables is not None:
        r6 = iptables_once(ip6tables, source=src["ip6tables"], family=Family.IPV6, strict=strict)
        errors += r6.errors
        warnings += r6.warnings
        if any(rs.family == Family.IPV6 for rs in rulesets) and r6.rulesets:
            errors.append(
                ParseError(
                    src["ip6tables"],
                    1,
                    1,
                    ip6tables.strip().splitlines()[0] if ip6tables.strip() else "",
                    "IPv6 rules are given twice: in the iptables evidence and as ip6tables; give them once",
                )
            )
        rulesets = tuple(rs for rs in rulesets if rs.family == Family.IPV4) + tuple(r6.rulesets)
    nft = None
    if nftables is not None:
        nr = parse_nftables(nftables, source=src["nftables"])
        nft = nr.ruleset
        errors += nr.errors
        warnings += nr.warnings
        xt = [t.label for t in nft.tables if is_iptables_nft(t)]
        if xt and rulesets:  # as simulate.Host decides
            assumptions.append(
                f"the nft tables {', '.join(xt)} are iptables-nft's: simulated once, from the iptables-save "
                "evidence (their place in the listing gives their order on a hook)"
            )
    if iptables is None and ip6tables is None and nftables is None:
        assumptions.append("no iptables rules given: every chain is empty with policy ACCEPT")

    pod_addr = ipaddress.ip_address(str(pod_ip)) if pod_ip is not None else None

    routes: tuple[Route, ...] = ()
    table_names: tuple[tuple[str, int], ...] = ()
    for key, text, fam in (("ip_route", ip_route, None), ("ip6_route", ip6_route, Family.IPV6)):
        if text is None:
            continue
        rr = parse_ip_routes(text, source=src[key], family=fam)
        routes += rr.routes
        table_names += tuple(n for n in rr.table_names if n not in table_names)
        errors += rr.errors
        warnings += rr.warnings

    found: tuple[Interface, ...] = interfaces_from_routes(routes) if routes else ()
    prefixes: dict[IPAddress, int] = {}
    if addr is not None:
        ar = parse_ip_addr(addr, source=src["addr"])
        errors += ar.errors
        warnings += ar.warnings
        found = _merge_interfaces(ar.interfaces(), found)
        prefixes = ar.prefixes()
    interfaces = _ensure_interfaces(found, pod_addr, assumptions, have_routes=bool(routes) or addr is not None)
    have_v4_routes = ip_route is not None
    ip_route = ip_route if ip_route is not None or ip6_route is None else ""

    pod_iface = _pod_iface(interfaces, pod_addr)
    base = default_routing(interfaces, prefixes=prefixes, default_dev=pod_iface)
    if ip_route is None:
        routes = base.routes
        assumptions.append(
            "no ip route output given: assuming a fresh pod's tables (local routes for "
            + ", ".join(f"{a} on {i.name}" for i in interfaces for a in i.addresses)
            + f"; main: default route out of {pod_iface})"
        )
    else:
        for fam, given in ((Family.IPV4, have_v4_routes), (Family.IPV6, ip6_route is not None)):
            mine_routes = [r for r in routes if Family.of(r.dst) == fam]
            theirs = [r for r in base.routes if Family.of(r.dst) == fam]
            label = "ip route" if fam == Family.IPV4 else "ip -6 route"
            if not given:
                if fam == Family.IPV4 or any(a.version == 6 for i in interfaces if not i.loopback for a in i.addresses):
                    routes = tuple(routes) + tuple(theirs)
                    assumptions.append(
                        f"no {label} output given: assuming a fresh pod's {fam.value} tables "
                        f"(default route out of {pod_iface})"
                    )
                else:
                    routes = tuple(routes) + tuple(r for r in theirs if r.table == 255)
                continue
            if not any(r.table == 255 for r in mine_routes):
                routes = tuple(routes) + tuple(r for r in theirs if r.table == 255)
                assumptions.append(
                    f"the {label} output has no local table: adding the local routes of the interfaces "
                    "(use `show table all` to include it)"
                )
            if not any(r.table == 254 for r in mine_routes):
                routes = tuple(routes) + tuple(r for r in theirs if r.table == 254)
                assumptions.append(
                    f"the {label} input has no main table (only commands?): assuming a fresh pod's main table "
                    f"(default route out of {pod_iface})"
                )

    rules: tuple[PolicyRule, ...] = ()
    for key, text, fam in (("ip_rule", ip_rule, Family.IPV4), ("ip6_rule", ip6_rule, Family.IPV6)):
        label = "ip rule" if fam == Family.IPV4 else "ip -6 rule"
        if text is None:
            continue
        rp = parse_ip_rules(text, source=src[key], family=fam if fam == Family.IPV6 else None)
        errors += rp.errors
        warnings += rp.warnings
        got = rp.rules
        for f in (Family.IPV4, Family.IPV6):
            mine = tuple(r for r in got if r.family == f)
            if not mine:
                continue
            if not rp.has_listing:
                # Only `ip rule add ...` commands were given: they add to the kernel's default rules.
                mine = tuple(r for r in with_default_rules(mine) if r.family == f)
                assumptions.append(
                    f"the {label} input holds commands, not a listing: adding the kernel's default "
                    "rules (0 local, 32766 main, 32767 default)"
                )
            rules = tuple(r for r in rules if r.family != f) + mine
    for f, label in ((Family.IPV4, "ip rule"), (Family.IPV6, "ip -6 rule")):
        if not any(r.family == f for r in rules):
            rules += default_policy_rules(f)
            if f == Family.IPV4 or ip6tables is not None or ip6_route is not None:
                assumptions.append(
                    f"no {label} output given: assuming kernel defaults (0: lookup local, 32766: lookup main, "
                    "32767: lookup default)"
                )

    if sysctl is not None:
        sr = parse_sysctls(sysctl, source=src["sysctl"])
        sysctls = sr.sysctls
        errors += sr.errors
        warnings += sr.warnings
    else:
        sysctls = Sysctls()
        assumptions.append(
            "no sysctl output given: assuming kernel defaults (route_localnet=0, rp_filter=0, "
            "src_valid_mark=0, ip_forward=0); a new namespace copies the node's values, so give "
            "`sysctl -a` output to be sure"
        )

    snapshot = Snapshot(
        rulesets=rulesets,
        routing=RoutingConfig(rules=tuple(rules), routes=tuple(routes), table_names=table_names),
        sysctls=sysctls,
        interfaces=interfaces,
        nftables=nft,
        sockets=sockets,
        assumptions=tuple(assumptions),
    )
    return LoadResult(snapshot, tuple(errors), tuple(warnings))


def _merge_interfaces(from_addr: tuple[Interface, ...], from_routes: tuple[Interface, ...]) -> tuple[Interface, ...]:
    """`ip addr` is authoritative for addresses; devices only the routes name are kept too."""
    by_name = {i.name: i for i in from_addr}
    for i in from_routes:
        if i.name not in by_name:
            by_name[i.name] = i
        else:
            extra = tuple(a for a in i.addresses if a not in by_name[i.name].addresses)
            if extra:
                by_name[i.name] = replace(by_name[i.name], addresses=by_name[i.name].addresses + extra)
    return tuple(by_name.values())


def _pod_iface(interfaces: tuple[Interface, ...], pod_addr: IPAddress | None) -> str:
    """The interface that holds the pod IP; without one, the only non-loopback interface, else the default."""
    if pod_addr is not None:
        for i in interfaces:
            if pod_addr in i.addresses and not i.loopback:
                return i.name
    others = [i.name for i in interfaces if not i.loopback]
    return others[0] if len(others) == 1 else DEFAULT_POD_IFACE


def _ensure_interfaces(
    found: tuple[Interface, ...], pod_addr: IPAddress | None, assumptions: list[str], have_routes: bool
) -> tuple[Interface, ...]:
    by_name = {i.name: i for i in found}
    lo = by_name.get("lo")
    lo_addrs = tuple(lo.addresses) if lo else ()
    for a in ("127.0.0.1", "::1"):
        ip = ipaddress.ip_address(a)
        if ip not in lo_addrs:
            lo_addrs = (*lo_addrs, ip)
    by_name["lo"] = Interface("lo", lo_addrs, loopback=True)
    if pod_addr is not None and not any(pod_addr in i.addresses for i in by_name.values()):
        name = _pod_iface(tuple(by_name.values()), None)
        holder = by_name.get(name)
        addrs = (holder.addresses if holder else ()) + (pod_addr,)
        by_name[name] = Interface(name, addrs)
        if have_routes:
            others = [n for n, i in by_name.items() if not i.loopback]
            why = "the only interface they show" if len(others) == 1 and holder else "the default name"
            assumptions.append(f"the routes do not show the pod IP {pod_addr}: assuming it is on {name} ({why})")
        else:
            assumptions.append(f"no routes or addresses given: assuming the pod IP {pod_addr} is on {name}")
    if pod_addr is None and not any(not i.loopback for i in by_name.values()):
        by_name[DEFAULT_POD_IFACE] = Interface(DEFAULT_POD_IFACE, ())
        assumptions.append(f"the pod IP is unknown: {DEFAULT_POD_IFACE} has no address (give the pod IP)")
    order = ["lo", *sorted(n for n in by_name if n != "lo")]
    return tuple(by_name[n] for n in order)
