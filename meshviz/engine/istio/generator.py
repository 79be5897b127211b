"""Reproduce what `istio-iptables` (or the istio-cni plugin) programs for a pod.

    capture = generate(settings)                        # istio-init, current layout
    capture = generate(settings, flavour="cni-plugin")  # the CNI plugin
    capture = generate(settings, flavour="legacy-1.23") # one command per rule, Istio 1.23
    capture.rulesets          # (IPv4 Ruleset, IPv6 Ruleset if enabled): parsed, ready to simulate
    capture.restore_text      # {Family: iptables-restore input}
    capture.commands          # {Family: ("iptables -t nat -N ISTIO_INBOUND", ...)}
    capture.ip_rule, capture.ip_route, capture.ip_addr   # `ip` arguments (TPROXY, IPv6)
    capture.policy_rules, capture.routes                 # the same, parsed
    capture.transcript()      # what Istio's dry-run tests record (the corpus goldens)

The rules are built the way Istio's rule builder builds them - an ordered list
of `-A`/`-I` operations per family, `-N` declarations derived from it - and the
text is then read back with the engine's own iptables parser, so the rulesets
are exactly what the parser makes of the real goldens.

The order of operations follows `tools/istio-iptables/pkg/capture/run.go`
(`Run`, `handleInboundPortsInclude`, `handleOutboundIncludeRules`,
`SetupDNSRedir`/`addDNSConntrackZones`) and the builder's `buildRestore`; the
1.23 layout (DNS rules in `ISTIO_OUTPUT` and raw `ISTIO_OUTPUT`, `-p tcp` on
the OUTPUT jump, a plain `DROP` for INVALID) is what the 1.23.0 goldens show.
TPROXY routing follows `tools/common/tproxy` (`configureTProxyRoutes`,
`configureIPv6Addresses`).  No code is copied; see docs/istio-generator.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family
from meshviz.engine.istio.iptables_builder import (
    _VERSIONED,
    ISTIO_DIVERT,
    ISTIO_DROP,
    ISTIO_IN_REDIRECT,
    ISTIO_INBOUND,
    ISTIO_OUTPUT,
    ISTIO_OUTPUT_DNS,
    ISTIO_REDIRECT,
    ISTIO_TPROXY,
    GeneratedCapture,
    TraceCommand,
    _Builder,
    command_lines,
    restore_payload,
)
from meshviz.engine.istio.settings import (
    DNS_LISTENER_PORT,
    FLAVOURS,
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
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import PolicyRule, Route

__all__ = ["effective_settings", "generate"]


# --------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ranges:
    wildcard: bool = False
    cidrs: tuple[Cidr, ...] = ()
    has_loopback: bool = False


def _split_ranges(value: CidrSelection) -> tuple[_Ranges, _Ranges]:
    """Istio's separateV4V6: a wildcard for both families, or the CIDRs of each."""
    if value == WILDCARD:
        return _Ranges(wildcard=True), _Ranges(wildcard=True)
    v4 = tuple(c for c in value if c.version == 4)
    v6 = tuple(c for c in value if c.version == 6)
    return (
        _Ranges(cidrs=v4, has_loopback=any(c.ip.is_loopback for c in v4)),
        _Ranges(cidrs=v6, has_loopback=any(c.ip.is_loopback for c in v6)),
    )


def _cidr_text(c: Cidr) -> str:
    return c.with_prefixlen


def effective_settings(settings: CaptureSettings, flavour: Flavour = "capture") -> CaptureSettings:
    """The settings as the flavour applies them: the CNI plugin appends its status ports to the inbound
    exclusions (after the pod's own, duplicates dropped)."""
    if flavour == "cni-plugin":
        merged: list[int] = []
        for port in (*settings.inbound_ports_exclude, *settings.cni_status_ports):
            if port not in merged:
                merged.append(port)
        return replace(settings, inbound_ports_exclude=tuple(merged))
    return settings


def _inbound(b: _Builder, s: CaptureSettings) -> None:
    """handleInboundPortsInclude: where inbound connections go (nat REDIRECT or mangle TPROXY)."""
    if s.inbound_ports_include == ():
        return
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    mark = str(s.inbound_tproxy_mark)
    if s.tproxy:
        b.append("mangle", ISTIO_DIVERT, "-j", "MARK", "--set-mark", mark)
        b.append("mangle", ISTIO_DIVERT, "-j", "ACCEPT")
        b.append_versioned(
            loopback,
            "::1/128",
            "mangle",
            ISTIO_TPROXY,
            "!",
            "-d",
            _VERSIONED,
            "-p",
            "tcp",
            "-j",
            "TPROXY",
            "--tproxy-mark",
            f"{mark}/0xffffffff",
            "--on-port",
            str(s.inbound_capture_port),
        )
        table = "mangle"
    else:
        table = "nat"
    b.append(table, "PREROUTING", "-p", "tcp", "-j", ISTIO_INBOUND, command=TraceCommand.JUMP_INBOUND)
    if s.inbound_ports_include == WILDCARD:
        for port in s.inbound_ports_exclude:
            b.append(
                table, ISTIO_INBOUND, "-p", "tcp", "--dport", str(port), "-j", "RETURN",
                command=TraceCommand.EXCLUDE_INBOUND_PORT,
            )  # fmt: skip
        if s.tproxy:
            b.append(
                "mangle",
                ISTIO_INBOUND,
                "-p",
                "tcp",
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                ISTIO_DIVERT,
            )
            b.append("mangle", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_TPROXY)
        else:
            b.append("nat", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_IN_REDIRECT)
        return
    for port in s.inbound_ports_include:
        p = str(port)
        if s.tproxy:
            b.append(
                "mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", p, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                "-j", ISTIO_DIVERT, command=TraceCommand.INCLUDE_INBOUND_PORT,
            )  # fmt: skip
            b.append(
                "mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", p, "-j", ISTIO_TPROXY,
                command=TraceCommand.INCLUDE_INBOUND_PORT,
            )  # fmt: skip
        else:
            b.append(
                "nat", ISTIO_INBOUND, "-p", "tcp", "--dport", p, "-j", ISTIO_IN_REDIRECT,
                command=TraceCommand.INCLUDE_INBOUND_PORT,
            )  # fmt: skip


def _outbound_includes(b: _Builder, s: CaptureSettings, ranges: _Ranges, family: Family) -> None:
    """handleOutboundIncludeRules for one family (KubeVirt interfaces rerouted like outbound traffic)."""
    if ranges.wildcard:
        b.append("nat", ISTIO_OUTPUT, "-j", ISTIO_REDIRECT, family=family)
        for iface in s.reroute_virtual_interfaces:
            b.insert(
                "nat", "PREROUTING", 1, "-i", iface, "-j", ISTIO_REDIRECT, family=family, command=TraceCommand.KUBEVIRT
            )
        return
    for cidr in ranges.cidrs:
        for iface in s.reroute_virtual_interfaces:
            b.insert(
                "nat", "PREROUTING", 1, "-i", iface, "-d", _cidr_text(cidr), "-j", ISTIO_REDIRECT,
                family=family, command=TraceCommand.KUBEVIRT,
            )  # fmt: skip
        b.append("nat", ISTIO_OUTPUT, "-d", _cidr_text(cidr), "-j", ISTIO_REDIRECT, family=family)


def _owner_groups(b: _Builder, s: CaptureSettings, chain: str, prefix: tuple[str, ...]) -> None:
    """handleCaptureByOwnerGroup: RETURN for excluded groups, or for everyone outside the included ones."""
    if s.owner_groups_include == WILDCARD:
        for group in s.owner_groups_exclude:
            b.append("nat", chain, *prefix, "-m", "owner", "--gid-owner", group, "-j", "RETURN")
        return
    none_of: list[str] = []
    for group in s.owner_groups_include:
        none_of += ["-m", "owner", "!", "--gid-owner", group]
    b.append("nat", chain, *prefix, *none_of, "-j", "RETURN")


def _dns_current(b: _Builder, s: CaptureSettings) -> None:
    """SetupDNSRedir + addDNSConntrackZones: ISTIO_OUTPUT_DNS in nat and raw."""
    v4, v6 = s.dns_servers_v4, s.dns_servers_v6
    agent = str(DNS_LISTENER_PORT)
    b.append("raw", "OUTPUT", "-j", ISTIO_OUTPUT_DNS)
    if s.capture_all_dns or v4:
        b.append("nat", ISTIO_OUTPUT, "-j", ISTIO_OUTPUT_DNS, family=Family.IPV4)
    if s.capture_all_dns or v6:
        b.append("nat", ISTIO_OUTPUT, "-j", ISTIO_OUTPUT_DNS, family=Family.IPV6)
    for proto, to_port in (("tcp", "--to-ports"), ("udp", "--to-port")):
        if s.capture_all_dns:
            b.append("nat", ISTIO_OUTPUT_DNS, "-p", proto, "--dport", "53", "-j", "REDIRECT", to_port, agent)
            continue
        for server in v4:
            b.append(
                "nat", ISTIO_OUTPUT_DNS, "-p", proto, "--dport", "53", "-d", f"{server}/32", "-j", "REDIRECT", to_port,
                agent, family=Family.IPV4,
            )  # fmt: skip
        for server in v6:
            b.append(
                "nat", ISTIO_OUTPUT_DNS, "-p", proto, "--dport", "53", "-d", f"{server}/128", "-j", "REDIRECT", to_port,
                agent, family=Family.IPV6,
            )  # fmt: skip
    _conntrack_zones(b, s, ISTIO_OUTPUT_DNS)
    if s.capture_all_dns:
        b.append("raw", "PREROUTING", "-j", ISTIO_INBOUND)
        b.append("raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
        b.append("raw", ISTIO_INBOUND, "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
        return
    for family, servers, bits in ((Family.IPV4, v4, 32), (Family.IPV6, v6, 128)):
        if servers:
            b.append("raw", "PREROUTING", "-j", ISTIO_INBOUND, family=family)
        for server in servers:
            b.append(
                "raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--dport", "53", "-d", f"{server}/{bits}", "-j", "CT", "--zone", "2",
                family=family,
            )  # fmt: skip
            b.append(
                "raw", ISTIO_INBOUND, "-p", "udp", "--sport", "53", "-s", f"{server}/{bits}", "-j", "CT", "--zone", "1",
                family=family,
            )  # fmt: skip


def _conntrack_zones(b: _Builder, s: CaptureSettings, chain: str) -> None:
    """The proxy's own DNS traffic: to upstream resolvers in zone 1, its answers to the app in zone 2."""
    for kind, ids in (("--uid-owner", s.proxy_uids), ("--gid-owner", s.proxy_gids)):
        for ident in ids:
            b.append("raw", chain, "-p", "udp", "--dport", "53", "-m", "owner", kind, ident, "-j", "CT", "--zone", "1")
            b.append(
                "raw", chain, "-p", "udp", "--sport", str(DNS_LISTENER_PORT), "-m", "owner", kind, ident,
                "-j", "CT", "--zone", "2",
            )  # fmt: skip


def _dns_tcp_legacy(b: _Builder, s: CaptureSettings) -> None:
    """1.23: TCP DNS redirected straight from ISTIO_OUTPUT."""
    agent = str(DNS_LISTENER_PORT)
    if s.capture_all_dns:
        b.append("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", agent)
        return
    for family, servers, bits in ((Family.IPV4, s.dns_servers_v4, 32), (Family.IPV6, s.dns_servers_v6, 128)):
        for server in servers:
            b.append(
                "nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", "53", "-d", f"{server}/{bits}", "-j", "REDIRECT",
                "--to-ports", agent, family=family,
            )  # fmt: skip


def _dns_udp_legacy(b: _Builder, s: CaptureSettings) -> None:
    """1.23: UDP jumps to ISTIO_OUTPUT in nat and raw, then the UDP DNS rules and conntrack zones there."""
    agent = str(DNS_LISTENER_PORT)
    b.append("nat", "OUTPUT", "-p", "udp", "-j", ISTIO_OUTPUT)
    b.append("raw", "OUTPUT", "-p", "udp", "-j", ISTIO_OUTPUT)
    for kind, ids in (("--uid-owner", s.proxy_uids), ("--gid-owner", s.proxy_gids)):
        for ident in ids:
            b.append("nat", ISTIO_OUTPUT, "-p", "udp", "--dport", "53", "-m", "owner", kind, ident, "-j", "RETURN")
    _owner_groups(b, s, ISTIO_OUTPUT, ("-p", "udp", "--dport", "53"))
    if s.capture_all_dns:
        b.append("nat", ISTIO_OUTPUT, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-port", agent)
    else:
        for family, servers, bits in ((Family.IPV4, s.dns_servers_v4, 32), (Family.IPV6, s.dns_servers_v6, 128)):
            for server in servers:
                b.append(
                    "nat", ISTIO_OUTPUT, "-p", "udp", "--dport", "53", "-d", f"{server}/{bits}", "-j", "REDIRECT",
                    "--to-port", agent, family=family,
                )  # fmt: skip
    _conntrack_zones(b, s, ISTIO_OUTPUT)
    if s.capture_all_dns:
        b.append("raw", ISTIO_OUTPUT, "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
        b.append("raw", "PREROUTING", "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
        return
    for family, servers, bits in ((Family.IPV4, s.dns_servers_v4, 32), (Family.IPV6, s.dns_servers_v6, 128)):
        for server in servers:
            b.append(
                "raw", ISTIO_OUTPUT, "-p", "udp", "--dport", "53", "-d", f"{server}/{bits}", "-j", "CT", "--zone", "2",
                family=family,
            )  # fmt: skip
            b.append(
                "raw", "PREROUTING", "-p", "udp", "--sport", "53", "-s", f"{server}/{bits}", "-j", "CT", "--zone", "1",
                family=family,
            )  # fmt: skip


def _tproxy_marks(b: _Builder, s: CaptureSettings) -> None:
    """TPROXY mode: connection marks so replies follow policy routing, and Envoy's own loops kept out."""
    mark = str(s.inbound_tproxy_mark)
    outbound_mark = str(OUTBOUND_MARK)
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    b.append("mangle", "PREROUTING", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark")
    b.append("mangle", "OUTPUT", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN")
    for kind, ids in (("--uid-owner", s.proxy_uids), ("--gid-owner", s.proxy_gids)):
        for ident in ids:
            b.append_versioned(
                loopback, "::1/128", "mangle", "OUTPUT", "!", "-d", _VERSIONED, "-p", "tcp", "-o", "lo",
                "-m", "owner", kind, ident, "-j", "MARK", "--set-mark", outbound_mark,
            )  # fmt: skip
    b.append("mangle", "OUTPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-j", "CONNMARK", "--restore-mark")
    b.insert("mangle", ISTIO_INBOUND, 1, "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN")
    b.insert(
        "mangle",
        ISTIO_INBOUND,
        2,
        "-p",
        "tcp",
        "-s",
        INBOUND_PASSTHROUGH_V4,
        "-i",
        "lo",
        "-j",
        "RETURN",
        family=Family.IPV4,
    )
    b.insert(
        "mangle",
        ISTIO_INBOUND,
        2,
        "-p",
        "tcp",
        "-s",
        INBOUND_PASSTHROUGH_V6,
        "-i",
        "lo",
        "-j",
        "RETURN",
        family=Family.IPV6,
    )
    b.insert(
        "mangle", ISTIO_INBOUND, 3, "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", outbound_mark, "-j", "RETURN"
    )


def _build(s: CaptureSettings, flavour: Flavour, notes: list[str]) -> _Builder:
    legacy = flavour == "legacy-1.23"
    b = _Builder(ipv6=s.enable_ipv6, trace=s.trace_logging)
    v4_exclude, v6_exclude = _split_ranges(s.outbound_ip_ranges_exclude)
    v4_include, v6_include = _split_ranges(s.outbound_ip_ranges_include)
    loopback_included = v4_include.has_loopback or v6_include.has_loopback
    loopback = s.host_ipv4_loopback_cidr.with_prefixlen
    tunnel = str(s.inbound_tunnel_port)

    redirect_dns = s.redirect_dns
    if redirect_dns and not legacy and not s.capture_all_dns and not s.dns_servers_v4 and not s.dns_servers_v6:
        redirect_dns = False
        notes.append(
            "DNS capture is off: redirect-dns is set but capture-all-dns is not and no DNS servers are known "
            "(istio-iptables disables DNS capture in that case)"
        )

    # Interfaces left alone entirely, then KubeVirt interfaces (inbound is treated as outbound below).
    for iface in s.exclude_interfaces:
        b.append("nat", "PREROUTING", "-i", iface, "-j", "RETURN", command=TraceCommand.EXCLUDE_INTERFACE)
        b.append("nat", "OUTPUT", "-o", iface, "-j", "RETURN", command=TraceCommand.EXCLUDE_INTERFACE)
    if s.tproxy:
        for iface in s.exclude_interfaces:
            b.append("mangle", "PREROUTING", "-i", iface, "-j", "RETURN", command=TraceCommand.EXCLUDE_INTERFACE)
            b.append("mangle", "OUTPUT", "-o", iface, "-j", "RETURN", command=TraceCommand.EXCLUDE_INTERFACE)
    for iface in s.reroute_virtual_interfaces:
        b.insert("nat", "PREROUTING", 1, "-i", iface, "-j", "RETURN", command=TraceCommand.KUBEVIRT)

    if s.drop_invalid:
        if legacy:
            b.append("mangle", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
        else:
            b.append("mangle", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", ISTIO_DROP)
            b.append("mangle", ISTIO_DROP, "-j", "DROP")

    b.append("nat", ISTIO_INBOUND, "-p", "tcp", "--dport", tunnel, "-j", "RETURN")
    b.append("nat", ISTIO_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(s.proxy_port))
    b.append(
        "nat", ISTIO_IN_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(s.inbound_capture_port),
        command=TraceCommand.INBOUND_CAPTURE,
    )  # fmt: skip
    _inbound(b, s)

    if legacy:
        b.append("nat", "OUTPUT", "-p", "tcp", "-j", ISTIO_OUTPUT, command=TraceCommand.JUMP_OUTBOUND)
    else:
        b.append("nat", "OUTPUT", "-j", ISTIO_OUTPUT, command=TraceCommand.JUMP_OUTBOUND)
    for port in s.outbound_ports_exclude:
        b.append("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", str(port), "-j", "RETURN")
        if not legacy:
            b.append("nat", ISTIO_OUTPUT, "-p", "udp", "--dport", str(port), "-j", "RETURN")

    # Envoy's inbound passthrough connects from 127.0.0.6 / ::6 over lo.
    b.append_versioned(
        INBOUND_PASSTHROUGH_V4,
        INBOUND_PASSTHROUGH_V6,
        "nat",
        ISTIO_OUTPUT,
        "-o",
        "lo",
        "-s",
        _VERSIONED,
        "-j",
        "RETURN",
    )

    for kind, ids in (("--uid-owner", s.proxy_uids), ("--gid-owner", s.proxy_gids)):
        for ident in ids:
            # The proxy calling a service VIP that lands back on this pod: capture it as inbound.
            if redirect_dns and kind == "--uid-owner":
                ports: tuple[str, ...] = ("-m", "multiport", "!", "--dports", f"53,{tunnel}")
            else:
                ports = ("!", "--dport", tunnel)
            b.append_versioned(
                loopback, "::1/128", "nat", ISTIO_OUTPUT, "-o", "lo", "!", "-d", _VERSIONED, "-p", "tcp", *ports,
                "-m", "owner", kind, ident, "-j", ISTIO_IN_REDIRECT,
            )  # fmt: skip
            # The application talking to itself over lo is left alone, unless loopback ranges are captured.
            if not loopback_included:
                if redirect_dns:
                    b.append(
                        "nat",
                        ISTIO_OUTPUT,
                        "-o",
                        "lo",
                        "-p",
                        "tcp",
                        "!",
                        "--dport",
                        "53",
                        "-m",
                        "owner",
                        "!",
                        kind,
                        ident,
                        "-j",
                        "RETURN",
                    )
                else:
                    b.append("nat", ISTIO_OUTPUT, "-o", "lo", "-m", "owner", "!", kind, ident, "-j", "RETURN")
            # The proxy's own traffic is never captured again.
            b.append("nat", ISTIO_OUTPUT, "-m", "owner", kind, ident, "-j", "RETURN")

    _owner_groups(b, s, ISTIO_OUTPUT, ())

    if redirect_dns:
        if legacy:
            _dns_tcp_legacy(b, s)
        else:
            _dns_current(b, s)

    b.append_versioned(loopback, "::1/128", "nat", ISTIO_OUTPUT, "-d", _VERSIONED, "-j", "RETURN")
    for cidr in v4_exclude.cidrs:
        b.append("nat", ISTIO_OUTPUT, "-d", _cidr_text(cidr), "-j", "RETURN", family=Family.IPV4)
    for cidr in v6_exclude.cidrs:
        b.append("nat", ISTIO_OUTPUT, "-d", _cidr_text(cidr), "-j", "RETURN", family=Family.IPV6)
    for port in s.outbound_ports_include:
        b.append("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", str(port), "-j", ISTIO_REDIRECT)
    _outbound_includes(b, s, v4_include, Family.IPV4)
    _outbound_includes(b, s, v6_include, Family.IPV6)

    if legacy and redirect_dns:
        _dns_udp_legacy(b, s)
    if s.tproxy:
        _tproxy_marks(b, s)
    return b


# --------------------------------------------------------------------------
# Notes: what the settings mean, said once
# --------------------------------------------------------------------------


def _notes(s: CaptureSettings, flavour: Flavour) -> list[str]:
    notes: list[str] = []
    if s.inbound_ports_include == ():
        notes.append("inbound: no port is captured (inbound ports include is empty)")
    elif s.inbound_ports_include != WILDCARD and s.inbound_ports_exclude:
        notes.append("inbound: the excluded ports are ignored because the included ports are an explicit list")
    v4_include, v6_include = _split_ranges(s.outbound_ip_ranges_include)
    if not s.outbound_ports_include:
        for name, ranges, on in (("IPv4", v4_include, True), ("IPv6", v6_include, s.enable_ipv6)):
            if on and not ranges.wildcard and not ranges.cidrs:
                notes.append(f"outbound {name}: nothing is redirected to Envoy (no {name} range is included)")
    if v4_include.has_loopback or v6_include.has_loopback:
        notes.append(
            "outbound: a loopback range is included, so the rules that let the application reach itself over lo "
            "uncaptured are left out"
        )
    if s.owner_groups_include != WILDCARD and s.owner_groups_exclude:
        notes.append("owner groups: the exclusions are ignored because the included groups are an explicit list")
    if s.owner_groups_include == ():
        notes.append("owner groups: the include list is empty, so no outbound traffic is captured")
    if s.tproxy and s.inbound_ports_include != ():
        notes.append(
            f"TPROXY: marked packets (mark {s.inbound_tproxy_mark}) are routed to lo by table "
            f"{s.inbound_tproxy_route_table}; Envoy's inbound listener needs IP_TRANSPARENT (NET_ADMIN)"
        )
    if s.enable_ipv6:
        notes.append("IPv6: ::6/128 is added to lo as the source of Envoy's inbound passthrough connections")
    if s.trace_logging and flavour != "legacy-1.23":
        notes.append(
            "trace logging: NFLOG rules are placed as istio-iptables 1.23 placed them (not covered by a current golden)"
        )
    if flavour == "cni-plugin" and s.cni_status_ports:
        notes.append("CNI plugin: inbound ports " + ",".join(map(str, s.cni_status_ports)) + " are always excluded")
    return notes


def generate(settings: CaptureSettings, flavour: Flavour = "capture") -> GeneratedCapture:
    """What istio-iptables programs for `settings`; see the module doc."""
    if flavour not in FLAVOURS:
        raise SettingsError(SettingIssue("flavour", str(flavour), f"must be one of {', '.join(FLAVOURS)}"))
    s = effective_settings(settings, flavour)
    notes = _notes(s, flavour)
    b = _build(s, flavour, notes)
    families = (Family.IPV4, Family.IPV6) if s.enable_ipv6 else (Family.IPV4,)

    restore = {fam: restore_payload(b.ops[fam]) for fam in families}
    commands = {fam: command_lines(b.ops[fam], fam) for fam in families}
    rulesets: list[Ruleset] = []
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    for fam in families:
        if flavour == "legacy-1.23":
            text = "".join(line + "\n" for line in commands[fam])
        else:
            text = restore[fam]
        source = f"istio-iptables ({flavour}, {fam.value})"
        result = parse_iptables(text, source, family=fam)
        errors.extend(result.errors)
        warnings.extend(result.warnings)
        rs = result.ruleset(fam)
        rulesets.append(rs if rs is not None else Ruleset(family=fam, source=source))

    ip_rule: list[str] = []
    ip_route: list[str] = []
    if s.tproxy and s.inbound_ports_include != ():
        for fam in families:
            six = "-6 " if fam == Family.IPV6 else ""
            ip_rule.append(f"{six}rule add fwmark {s.inbound_tproxy_mark} lookup {s.inbound_tproxy_route_table}")
            ip_route.append(f"{six}route add local default dev lo table {s.inbound_tproxy_route_table}")
    ip_addr = ["-6 addr add ::6/128 dev lo"] if s.enable_ipv6 else []

    policy_rules: tuple[PolicyRule, ...] = ()
    routes: tuple[Route, ...] = ()
    if ip_rule:
        rules_result = parse_ip_rules("".join(f"ip {r}\n" for r in ip_rule), f"istio-iptables ({flavour}) ip rule")
        routes_result = parse_ip_routes("".join(f"ip {r}\n" for r in ip_route), f"istio-iptables ({flavour}) ip route")
        errors.extend(rules_result.errors)
        errors.extend(routes_result.errors)
        policy_rules, routes = rules_result.rules, routes_result.routes
        notes.append(
            "TPROXY: the fwmark rule is added without a priority, so the kernel gives it the next free one below "
            "the main table's (32765 on a fresh pod)"
        )

    return GeneratedCapture(
        settings=s,
        flavour=flavour,
        rulesets=tuple(rulesets),
        restore_text=restore,
        commands=commands,
        operations={fam: tuple(b.ops[fam]) for fam in families},
        ip_rule=tuple(ip_rule),
        ip_route=tuple(ip_route),
        ip_addr=tuple(ip_addr),
        sysctls=(),
        policy_rules=policy_rules,
        routes=routes,
        notes=tuple(notes),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
