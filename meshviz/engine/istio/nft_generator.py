"""Reproduce what Istio's native nftables backend programs for a sidecar pod.

    capture = generate_nftables(settings)                        # istio-init with --native-nftables
    capture = generate_nftables(settings, flavour="cni-plugin")  # the CNI plugin with native_nftables
    capture.script            # the `nft -f` script (Istio's capture goldens, byte for byte)
    capture.operations        # the same, as NftOperation values
    capture.state.rules("istio-proxy-nat", "istio-output")       # a chain's rules after the script ran
    capture.ip_rule, capture.ip_route, capture.ip_addr           # TPROXY / IPv6 routing, as with iptables

The settings are the iptables generator's `CaptureSettings`: istio-iptables and istio-nftables read the
same configuration (`tools/common/config`).  One `inet` table per iptables table (`istio-proxy-nat`,
`istio-proxy-mangle`, `istio-proxy-raw`) holds the rules of both families; a rule with an IPv6 address
is only added when IPv6 is enabled.

The order of the rules follows `tools/istio-nftables/pkg/capture/run.go` (`Run`,
`handleInboundPortsInclude`, `handleInboundTProxyMode`, `handleOutboundIncludeRules`,
`shortCircuitExcludeInterfaces`, `shortCircuitKubeInternalInterface`, `handleCaptureByOwnerGroup`,
`SetupDNSRedir`, `addDNSConntrackZones`, `addIstio*TableRules`).  No code is copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshviz.engine.istio.generator import effective_settings, generate
from meshviz.engine.istio.nft_builder import (
    IndexPolicy,
    NftChain,
    NftOperation,
    NftRuleBuilder,
    NftState,
    NftTable,
    script_text,
    table_operations,
    undeclared_jumps,
)
from meshviz.engine.istio.settings import (
    DNS_LISTENER_PORT,
    INBOUND_PASSTHROUGH_V4,
    INBOUND_PASSTHROUGH_V6,
    OUTBOUND_MARK,
    WILDCARD,
    CaptureSettings,
    Cidr,
    CidrSelection,
    Flavour,
    SettingIssue,
    SettingsError,
)
from meshviz.engine.routing.model import PolicyRule, Route

__all__ = [
    "MANGLE",
    "NAT",
    "NFT_FLAVOURS",
    "RAW",
    "SIDECAR_CHAINS",
    "GeneratedNftables",
    "generate_nftables",
    "sidecar_operations",
]

NAT = "istio-proxy-nat"
MANGLE = "istio-proxy-mangle"
RAW = "istio-proxy-raw"

PREROUTING = "prerouting"
OUTPUT = "output"
ISTIO_INBOUND = "istio-inbound"
ISTIO_REDIRECT = "istio-redirect"
ISTIO_IN_REDIRECT = "istio-in-redirect"
ISTIO_OUTPUT = "istio-output"
ISTIO_OUTPUT_DNS = "istio-output-dns"
ISTIO_DIVERT = "istio-divert"
ISTIO_TPROXY = "istio-tproxy"
ISTIO_DROP = "istio-drop"

COUNTER = "counter"
V6_LOOPBACK = "::1/128"

#: The layouts istio-nftables has: the CNI plugin runs the same code (nftables came after Istio 1.23).
NFT_FLAVOURS: tuple[Flavour, ...] = ("capture", "cni-plugin")

#: The chains each table may declare, in the order they are declared (base chains first).
SIDECAR_CHAINS: dict[str, tuple[NftChain, ...]] = {
    NAT: (
        NftChain(NAT, PREROUTING, "nat", "prerouting", -100),
        NftChain(NAT, OUTPUT, "nat", "output", -100),
        NftChain(NAT, ISTIO_INBOUND),
        NftChain(NAT, ISTIO_REDIRECT),
        NftChain(NAT, ISTIO_IN_REDIRECT),
        NftChain(NAT, ISTIO_OUTPUT),
        NftChain(NAT, ISTIO_OUTPUT_DNS),
    ),
    MANGLE: (
        NftChain(MANGLE, PREROUTING, "filter", "prerouting", -150),
        NftChain(MANGLE, OUTPUT, "route", "output", -150),
        NftChain(MANGLE, ISTIO_DIVERT),
        NftChain(MANGLE, ISTIO_TPROXY),
        NftChain(MANGLE, ISTIO_INBOUND),
        NftChain(MANGLE, ISTIO_DROP),
    ),
    RAW: (
        NftChain(RAW, PREROUTING, "filter", "prerouting", -300),
        NftChain(RAW, OUTPUT, "filter", "output", -300),
        NftChain(RAW, ISTIO_INBOUND),
        NftChain(RAW, ISTIO_OUTPUT_DNS),
    ),
}


@dataclass(frozen=True)
class GeneratedNftables:
    """What istio-nftables programs: the `nft -f` script, its operations, the resulting tables, routing."""

    settings: CaptureSettings  # as applied (the CNI plugin's status ports merged in)
    flavour: Flavour
    operations: tuple[NftOperation, ...]
    ip_rule: tuple[str, ...] = ()
    ip_route: tuple[str, ...] = ()
    ip_addr: tuple[str, ...] = ()
    policy_rules: tuple[PolicyRule, ...] = ()
    routes: tuple[Route, ...] = ()
    notes: tuple[str, ...] = ()
    #: Why nft would reject the script as a whole (Istio writes it anyway; the pod then gets no rules).
    problems: tuple[str, ...] = ()

    @property
    def script(self) -> str:
        """The `nft -f` script (what Istio's dry-run test records: the corpus goldens)."""
        return script_text(self.operations)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(op.obj.name for op in self.operations if op.verb == "add" and isinstance(op.obj, NftTable))

    @property
    def state(self) -> NftState:
        """The tables after the script ran on an empty ruleset (insertions applied)."""
        return NftState().apply(self.operations)


def _port_list(ports: tuple[int, ...]) -> list[str]:
    return [str(p) for p in ports]


def _cidr_text(c: Cidr) -> str:
    return c.with_prefixlen


@dataclass(frozen=True)
class _Ranges:
    wildcard: bool
    v4: tuple[Cidr, ...]
    v6: tuple[Cidr, ...]

    @property
    def has_loopback(self) -> bool:
        return any(c.ip.is_loopback for c in (*self.v4, *self.v6))


def _ranges(value: CidrSelection) -> _Ranges:
    """config.SeparateV4V6: a wildcard for both families, or each family's CIDRs."""
    if value == WILDCARD:
        return _Ranges(True, (), ())
    return _Ranges(False, tuple(c for c in value if c.version == 4), tuple(c for c in value if c.version == 6))


def _tproxy_inbound(b: NftRuleBuilder, s: CaptureSettings) -> None:
    """handleInboundTProxyMode: mark and divert established connections, TPROXY new ones to Envoy."""
    mark = str(s.inbound_tproxy_mark)
    port = f":{s.inbound_capture_port}"
    b.append(MANGLE, ISTIO_DIVERT, COUNTER, "meta mark set", mark)
    b.append(MANGLE, ISTIO_DIVERT, COUNTER, "accept")
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    tail = ("meta mark set", mark, COUNTER, "accept")
    b.append(MANGLE, ISTIO_TPROXY, "meta l4proto tcp", "ip daddr", "!=", loopback, "tproxy ip to", port, *tail)
    b.append_v6(MANGLE, ISTIO_TPROXY, "meta l4proto tcp", "ip6 daddr", "!=", V6_LOOPBACK, "tproxy ip6 to", port, *tail)
    b.append(MANGLE, PREROUTING, "meta l4proto tcp", COUNTER, "jump", ISTIO_INBOUND)
    established = ("ct state", "related,established")
    if s.inbound_ports_include == WILDCARD:
        for excluded in _port_list(s.inbound_ports_exclude):
            b.append(MANGLE, ISTIO_INBOUND, "meta l4proto tcp", "tcp dport", excluded, COUNTER, "return")
        b.append(MANGLE, ISTIO_INBOUND, "meta l4proto tcp", *established, COUNTER, "jump", ISTIO_DIVERT)
        b.append(MANGLE, ISTIO_INBOUND, "meta l4proto tcp", COUNTER, "jump", ISTIO_TPROXY)
        return
    for included in _port_list(s.inbound_ports_include):
        b.append(
            MANGLE, ISTIO_INBOUND, "meta l4proto tcp", *established, "tcp dport", included, COUNTER,
            "jump", ISTIO_DIVERT,
        )  # fmt: skip
        b.append(MANGLE, ISTIO_INBOUND, "meta l4proto tcp", "tcp dport", included, COUNTER, "jump", ISTIO_TPROXY)


def _inbound(b: NftRuleBuilder, s: CaptureSettings) -> None:
    """handleInboundPortsInclude: nat redirect to the inbound capture port, or TPROXY in mangle."""
    if s.inbound_ports_include == ():
        return
    if s.tproxy:
        _tproxy_inbound(b, s)
        return
    b.append(NAT, PREROUTING, "meta l4proto tcp", COUNTER, "jump", ISTIO_INBOUND)
    if s.inbound_ports_include == WILDCARD:
        for excluded in _port_list(s.inbound_ports_exclude):
            b.append(NAT, ISTIO_INBOUND, "meta l4proto tcp", "tcp dport", excluded, COUNTER, "return")
        b.append(NAT, ISTIO_INBOUND, "meta l4proto tcp", COUNTER, "jump", ISTIO_IN_REDIRECT)
        return
    for included in _port_list(s.inbound_ports_include):
        b.append(NAT, ISTIO_INBOUND, "meta l4proto tcp", "tcp dport", included, COUNTER, "jump", ISTIO_IN_REDIRECT)


def _owner_rules(b: NftRuleBuilder, s: CaptureSettings, redirect_dns: bool, loopback_included: bool) -> None:
    """The proxy's own traffic: back to itself through Envoy's inbound, never captured again."""
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    tunnel = str(s.inbound_tunnel_port)
    for key, ids in (("skuid", s.proxy_uids), ("skgid", s.proxy_gids)):
        for ident in ids:
            # Only the uid rules skip DNS as well as the tunnel port (run.go does not do it for gids).
            ports = f"{{ 53, {tunnel} }}" if redirect_dns and key == "skuid" else tunnel
            head = ("oifname", "lo", "meta l4proto tcp")
            tail = ("tcp dport", "!=", ports, key, ident, COUNTER, "jump", ISTIO_IN_REDIRECT)
            b.append(NAT, ISTIO_OUTPUT, *head, "ip daddr", "!=", loopback, *tail)
            b.append_v6(NAT, ISTIO_OUTPUT, *head, "ip6 daddr", "!=", V6_LOOPBACK, *tail)
            if not loopback_included:
                if redirect_dns:
                    b.append(
                        NAT, ISTIO_OUTPUT, "oifname", "lo", "meta l4proto tcp", "tcp dport", "!=", "53",
                        key, "!=", ident, COUNTER, "return",
                    )  # fmt: skip
                else:
                    b.append(NAT, ISTIO_OUTPUT, "oifname", "lo", key, "!=", ident, COUNTER, "return")
            b.append(NAT, ISTIO_OUTPUT, key, ident, COUNTER, "return")


def _owner_groups(b: NftRuleBuilder, s: CaptureSettings) -> None:
    """handleCaptureByOwnerGroup: return for excluded groups, or for every group outside the included ones."""
    if s.owner_groups_include == WILDCARD:
        for group in s.owner_groups_exclude:
            b.append(NAT, ISTIO_OUTPUT, "skgid", group, COUNTER, "return")
        return
    none_of: list[str] = []
    for group in s.owner_groups_include:
        none_of += ["skgid", "!=", group]
    b.append(NAT, ISTIO_OUTPUT, *none_of, COUNTER, "return")


def _dns(b: NftRuleBuilder, s: CaptureSettings) -> None:
    """SetupDNSRedir + addDNSConntrackZones: DNS to istio-agent on 15053, conntrack zones in raw."""
    v4, v6 = s.dns_servers_v4, s.dns_servers_v6
    agent = f":{DNS_LISTENER_PORT}"
    b.append(RAW, OUTPUT, COUNTER, "jump", ISTIO_OUTPUT_DNS)
    if s.capture_all_dns or v4 or v6:
        b.append(NAT, ISTIO_OUTPUT, COUNTER, "jump", ISTIO_OUTPUT_DNS)
    for proto in ("tcp", "udp"):
        if s.capture_all_dns:
            l4 = ("meta l4proto tcp",) if proto == "tcp" else ()
            b.append(NAT, ISTIO_OUTPUT_DNS, *l4, f"{proto} dport", "53", COUNTER, "redirect", "to", agent)
            continue
        for server in v4:
            b.append(
                NAT, ISTIO_OUTPUT_DNS, "ip daddr", f"{server}/32", f"{proto} dport", "53", COUNTER, "redirect", "to",
                agent,
            )  # fmt: skip
        for server in v6:
            b.append_v6(
                NAT, ISTIO_OUTPUT_DNS, "ip6 daddr", f"{server}/128", f"{proto} dport", "53", COUNTER, "redirect", "to",
                agent,
            )  # fmt: skip
    # The proxy's own DNS traffic: to upstream resolvers in zone 1, its answers to the application in zone 2.
    for key, ids in (("skuid", s.proxy_uids), ("skgid", s.proxy_gids)):
        for ident in ids:
            b.append(RAW, ISTIO_OUTPUT_DNS, "udp dport", "53", "meta", key, ident, COUNTER, "ct", "zone", "set", "1")
            b.append(
                RAW, ISTIO_OUTPUT_DNS, "udp sport", str(DNS_LISTENER_PORT), "meta", key, ident, COUNTER,
                "ct", "zone", "set", "2",
            )  # fmt: skip
    if s.capture_all_dns:
        b.append(RAW, PREROUTING, COUNTER, "jump", ISTIO_INBOUND)
        b.append(RAW, ISTIO_OUTPUT_DNS, "udp dport", "53", COUNTER, "ct", "zone", "set", "2")
        b.append(RAW, ISTIO_INBOUND, "udp sport", "53", COUNTER, "ct", "zone", "set", "1")
        return
    if v4 or v6:
        b.append(RAW, PREROUTING, COUNTER, "jump", ISTIO_INBOUND)
    for server in v4:
        b.append(
            RAW, ISTIO_OUTPUT_DNS, "udp dport", "53", "ip daddr", f"{server}/32", COUNTER, "ct", "zone", "set", "2"
        )
        b.append(RAW, ISTIO_INBOUND, "udp sport", "53", "ip saddr", f"{server}/32", COUNTER, "ct", "zone", "set", "1")
    for server in v6:
        b.append_v6(
            RAW, ISTIO_OUTPUT_DNS, "udp dport", "53", "ip6 daddr", f"{server}/128", COUNTER, "ct", "zone", "set", "2"
        )
        b.append_v6(
            RAW, ISTIO_INBOUND, "udp sport", "53", "ip6 saddr", f"{server}/128", COUNTER, "ct", "zone", "set", "1"
        )


def _outbound_includes(b: NftRuleBuilder, s: CaptureSettings, include: _Ranges) -> None:
    """handleOutboundIncludeRules: what goes to Envoy's outbound listener; KubeVirt interfaces likewise."""
    if include.wildcard:
        b.append(NAT, ISTIO_OUTPUT, COUNTER, "jump", ISTIO_REDIRECT)
        for iface in s.reroute_virtual_interfaces:
            b.insert(NAT, PREROUTING, 0, "iifname", iface, COUNTER, "jump", ISTIO_REDIRECT)
        return
    for cidr in include.v4:
        for iface in s.reroute_virtual_interfaces:
            b.insert(
                NAT, PREROUTING, 0, "iifname", iface, "ip daddr", _cidr_text(cidr), COUNTER, "jump", ISTIO_REDIRECT
            )
        b.append(NAT, ISTIO_OUTPUT, "ip daddr", _cidr_text(cidr), COUNTER, "jump", ISTIO_REDIRECT)
    for cidr in include.v6:
        for iface in s.reroute_virtual_interfaces:
            b.insert_v6(
                NAT, PREROUTING, 0, "iifname", iface, "ip6 daddr", _cidr_text(cidr), COUNTER, "jump", ISTIO_REDIRECT
            )
        b.append_v6(NAT, ISTIO_OUTPUT, "ip6 daddr", _cidr_text(cidr), COUNTER, "jump", ISTIO_REDIRECT)


def _tproxy_marks(b: NftRuleBuilder, s: CaptureSettings) -> None:
    """TPROXY: connection marks so replies follow policy routing; Envoy's own loops kept out of ISTIO_INBOUND."""
    mark = str(s.inbound_tproxy_mark)
    outbound_mark = str(OUTBOUND_MARK)
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    b.append(MANGLE, PREROUTING, "meta l4proto tcp", "mark", mark, COUNTER, "ct mark set mark")
    b.append(MANGLE, OUTPUT, "oifname", "lo", "meta l4proto tcp", "mark", mark, COUNTER, "return")
    for key, ids in (("skuid", s.proxy_uids), ("skgid", s.proxy_gids)):
        for ident in ids:
            tail = (key, ident, COUNTER, "meta mark set", outbound_mark)
            b.append(MANGLE, OUTPUT, "oifname", "lo", "meta l4proto tcp", "ip daddr", "!=", loopback, *tail)
            b.append_v6(MANGLE, OUTPUT, "oifname", "lo", "meta l4proto tcp", "ip6 daddr", "!=", V6_LOOPBACK, *tail)
    b.append(MANGLE, OUTPUT, "meta l4proto tcp", "ct", "mark", mark, COUNTER, "meta mark set", "ct", "mark")
    b.insert(MANGLE, ISTIO_INBOUND, 0, "meta l4proto tcp", "mark", mark, COUNTER, "return")
    passthrough = ("iifname", "lo", "meta l4proto tcp")
    b.insert(MANGLE, ISTIO_INBOUND, 1, *passthrough, "ip saddr", INBOUND_PASSTHROUGH_V4, COUNTER, "return")
    b.insert_v6(MANGLE, ISTIO_INBOUND, 1, *passthrough, "ip6 saddr", INBOUND_PASSTHROUGH_V6, COUNTER, "return")
    b.insert(MANGLE, ISTIO_INBOUND, 2, *passthrough, "mark", "!=", outbound_mark, COUNTER, "return")


def _build(s: CaptureSettings) -> NftRuleBuilder:
    b = NftRuleBuilder(ipv6=s.enable_ipv6)
    exclude = _ranges(s.outbound_ip_ranges_exclude)
    include = _ranges(s.outbound_ip_ranges_include)
    redirect_dns = s.redirect_dns and (s.capture_all_dns or bool(s.dns_servers_v4) or bool(s.dns_servers_v6))

    # Interfaces left alone entirely; KubeVirt interfaces' inbound is treated as outbound further down.
    for iface in s.exclude_interfaces:
        b.append(NAT, PREROUTING, "iifname", iface, COUNTER, "return")
        b.append(NAT, OUTPUT, "oifname", iface, COUNTER, "return")
    if s.tproxy:
        for iface in s.exclude_interfaces:
            b.append(MANGLE, PREROUTING, "iifname", iface, COUNTER, "return")
            b.append(MANGLE, OUTPUT, "oifname", iface, COUNTER, "return")
    for iface in s.reroute_virtual_interfaces:
        b.insert(NAT, PREROUTING, 0, "iifname", iface, COUNTER, "return")

    if s.drop_invalid:
        b.append(MANGLE, PREROUTING, "meta l4proto tcp", "ct state", "invalid", COUNTER, "jump", ISTIO_DROP)
        b.append(MANGLE, ISTIO_DROP, COUNTER, "drop")

    b.append(NAT, ISTIO_INBOUND, "meta l4proto tcp", "tcp dport", str(s.inbound_tunnel_port), COUNTER, "return")
    b.append(NAT, ISTIO_REDIRECT, "meta l4proto tcp", COUNTER, "redirect to", f":{s.proxy_port}")
    b.append(NAT, ISTIO_IN_REDIRECT, "meta l4proto tcp", COUNTER, "redirect to", f":{s.inbound_capture_port}")
    _inbound(b, s)

    b.append(NAT, OUTPUT, COUNTER, "jump", ISTIO_OUTPUT)
    for port in _port_list(s.outbound_ports_exclude):
        b.append(NAT, ISTIO_OUTPUT, "tcp dport", port, COUNTER, "return")
        b.append(NAT, ISTIO_OUTPUT, "udp dport", port, COUNTER, "return")
    # Envoy's inbound passthrough connects from 127.0.0.6 / ::6 over lo.
    b.append(NAT, ISTIO_OUTPUT, "oifname", "lo", "ip saddr", INBOUND_PASSTHROUGH_V4, COUNTER, "return")
    b.append_v6(NAT, ISTIO_OUTPUT, "oifname", "lo", "ip6 saddr", INBOUND_PASSTHROUGH_V6, COUNTER, "return")
    _owner_rules(b, s, redirect_dns, include.has_loopback)
    _owner_groups(b, s)
    if redirect_dns:
        _dns(b, s)

    b.append(NAT, ISTIO_OUTPUT, "ip daddr", s.host_ipv4_loopback_cidr.with_prefixlen, COUNTER, "return")
    b.append_v6(NAT, ISTIO_OUTPUT, "ip6 daddr", V6_LOOPBACK, COUNTER, "return")
    for cidr in exclude.v4:
        b.append(NAT, ISTIO_OUTPUT, "ip daddr", _cidr_text(cidr), COUNTER, "return")
    for cidr in exclude.v6:
        b.append_v6(NAT, ISTIO_OUTPUT, "ip6 daddr", _cidr_text(cidr), COUNTER, "return")
    for port in _port_list(s.outbound_ports_include):
        b.append(NAT, ISTIO_OUTPUT, "tcp dport", port, COUNTER, "jump", ISTIO_REDIRECT)
    _outbound_includes(b, s, include)

    if s.tproxy:
        _tproxy_marks(b, s)
    return b


def sidecar_operations(b: NftRuleBuilder) -> tuple[NftOperation, ...]:
    """The transaction: nat, mangle, raw, each only when it has rules (`addIstio*TableRules`)."""
    ops: list[NftOperation] = []
    for table, chains in SIDECAR_CHAINS.items():
        ops += table_operations(table, chains, b.rules_of(table), policy=IndexPolicy.CLAMP)
    return tuple(ops)


def _notes(s: CaptureSettings, iptables_notes: tuple[str, ...]) -> list[str]:
    notes = [n for n in iptables_notes if not n.startswith("trace logging")]
    if s.trace_logging:
        notes.append("trace logging: istio-nftables has no trace rules; the setting changes nothing here")
    return notes


def generate_nftables(settings: CaptureSettings, flavour: Flavour = "capture") -> GeneratedNftables:
    """What istio-nftables programs for `settings` (see the module doc)."""
    if flavour not in NFT_FLAVOURS:
        raise SettingsError(
            SettingIssue("flavour", str(flavour), f"native nftables exists for {', '.join(NFT_FLAVOURS)} only")
        )
    s = effective_settings(settings, flavour)
    operations = sidecar_operations(_build(s))
    problems = tuple(
        f"{table} {chain}: jump {target}, a chain istio-nftables does not create (it has no rules); nft rejects "
        "the whole transaction, so the pod gets no nftables rules"
        for table, chain, target in undeclared_jumps(operations)
    )
    # TPROXY routes and the ::6 address are configured by the same code (tools/common/tproxy) for both backends.
    routing = generate(settings, flavour)
    return GeneratedNftables(
        settings=s,
        flavour=flavour,
        operations=operations,
        ip_rule=routing.ip_rule,
        ip_route=routing.ip_route,
        ip_addr=routing.ip_addr,
        policy_rules=routing.policy_rules,
        routes=routing.routes,
        notes=tuple(_notes(s, routing.notes)),
        problems=problems,
    )
