"""Reproduce the nftables rules the istio-cni node agent programs for an ambient pod.

    settings = AmbientSettings(redirect_dns=True, enable_ipv6=True)
    inpod = generate_ambient_inpod(settings)                   # inside the pod's network namespace
    inpod.script                                               # `nft -f` script (Istio's cni goldens)
    inpod.ip_rule, inpod.ip_route                              # the netlink rule and routes, as `ip` arguments
    host = generate_ambient_host(settings, kubelet_uid="1000") # the node's probe SNAT rule

In ambient mode ztunnel listens inside the pod on 15001 (outbound), 15006 (inbound plaintext), 15008
(HBONE) and 15053 (DNS).  Its own packets carry mark 0x539/0xfff (1337); connections it accepted get
connmark 0x111/0xfff, which `ip rule add fwmark 0x111/0xfff pref 32764 lookup 100` sends to `lo`.
Kubelet's probes are SNATed on the node to a link-local address the pod rules let through.

Pod-level overrides are the pod's annotations as the node agent reads them: `ingress_mode`
(`ambient.istio.io/bypass-inbound-capture`), `virtual_interfaces` (`istio.io/reroute-virtual-interfaces`)
and `dns_proxy` (`ambient.istio.io/dns-capture`: true is "enabled", false "disabled"), over the agent's
global `redirect_dns` (`cni/pkg/nodeagent/net.go`, `getPodLevelTrafficOverrides`).

The order follows `cni/pkg/nftables/nftables.go` (`AppendInpodRules`, `CreateHostRulesForHealthChecks`,
`addIstioTableRules`); the routing `cni/pkg/iptables/iptables_linux.go`.  No code is copied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

from meshviz.engine.istio.nft_builder import (
    IndexPolicy,
    NftChain,
    NftOperation,
    NftRuleBuilder,
    NftState,
    script_text,
    table_operations,
)
from meshviz.engine.istio.settings import SettingIssue, SettingsError, parse_name_list

__all__ = [
    "AMBIENT_CHAINS",
    "AMBIENT_MANGLE",
    "AMBIENT_NAT",
    "AMBIENT_RAW",
    "AmbientSettings",
    "DnsOverride",
    "GeneratedAmbientNftables",
    "ambient_settings_from_pod",
    "generate_ambient_host",
    "generate_ambient_inpod",
]

AMBIENT_NAT = "istio-ambient-nat"
AMBIENT_MANGLE = "istio-ambient-mangle"
AMBIENT_RAW = "istio-ambient-raw"

PREROUTING = "prerouting"
POSTROUTING = "postrouting"
OUTPUT = "output"
ISTIO_PREROUTING = "istio-prerouting"
ISTIO_OUTPUT = "istio-output"
COUNTER = "counter"

#: ztunnel's listeners inside the pod.
ZTUNNEL_OUTBOUND_PORT = 15001
ZTUNNEL_INBOUND_PLAINTEXT_PORT = 15006
ZTUNNEL_INBOUND_PORT = 15008
DNS_CAPTURE_PORT = 15053
#: ztunnel's own packets (must match ztunnel's in-pod mark) and the mask the rules compare under.
INPOD_MARK = 0x539
INPOD_MASK = 0xFFF
#: The connmark of connections ztunnel accepted, routed to lo by table 100.
INPOD_TPROXY_MARK = 0x111
INPOD_TPROXY_MASK = 0xFFF
ROUTE_TABLE_INBOUND = 100
INPOD_RULE_PRIORITY = 32764
#: The node agent's sets of pod addresses kubelet probes (`<name>-v4`, `<name>-v6`).
PROBE_IP_SET = "istio-inpod-probes"

#: The node agent's defaults for its HOST_PROBE_SNAT_IP and HOST_PROBE_SNAT_IPV6 environment (nodeagent/options.go).
DEFAULT_HOST_PROBE_SNAT_V4 = ipaddress.IPv4Address("169.254.7.127")
DEFAULT_HOST_PROBE_SNAT_V6 = ipaddress.IPv6Address("fd16:9254:7127:1337:ffff:ffff:ffff:ffff")

DnsOverride: TypeAlias = Literal["unset", "enabled", "disabled"]

#: The chains each ambient table may declare, in declaration order.
AMBIENT_CHAINS: dict[str, tuple[NftChain, ...]] = {
    AMBIENT_NAT: (
        NftChain(AMBIENT_NAT, PREROUTING, "nat", "prerouting", -100),
        NftChain(AMBIENT_NAT, OUTPUT, "nat", "output", -100),
        NftChain(AMBIENT_NAT, ISTIO_PREROUTING),
        NftChain(AMBIENT_NAT, ISTIO_OUTPUT),
    ),
    AMBIENT_MANGLE: (
        NftChain(AMBIENT_MANGLE, PREROUTING, "filter", "prerouting", -150),
        NftChain(AMBIENT_MANGLE, OUTPUT, "route", "output", -150),
        NftChain(AMBIENT_MANGLE, ISTIO_PREROUTING),
        NftChain(AMBIENT_MANGLE, ISTIO_OUTPUT),
    ),
    AMBIENT_RAW: (
        NftChain(AMBIENT_RAW, PREROUTING, "filter", "prerouting", -300),
        NftChain(AMBIENT_RAW, OUTPUT, "filter", "output", -300),
        NftChain(AMBIENT_RAW, ISTIO_PREROUTING),
        NftChain(AMBIENT_RAW, ISTIO_OUTPUT),
    ),
}
_HOST_CHAINS = (NftChain(AMBIENT_NAT, POSTROUTING, "nat", "postrouting", 100),)


#: The pod annotations the node agent reads (cni/pkg/nodeagent/net.go, getPodLevelTrafficOverrides).
ANNOTATION_BYPASS_INBOUND = "ambient.istio.io/bypass-inbound-capture"
ANNOTATION_DNS_CAPTURE = "ambient.istio.io/dns-capture"
ANNOTATION_VIRTUAL_INTERFACES = "istio.io/reroute-virtual-interfaces"
# Go's strconv.ParseBool, which the agent uses: anything else means "annotation ignored".
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_GO_BOOLS |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _hex(value: int) -> str:
    return f"0x{value:x}"


@dataclass(frozen=True)
class AmbientSettings:
    """The node agent's configuration and one pod's overrides."""

    #: REDIRECT_DNS: capture DNS to ztunnel for every pod unless a pod says otherwise.
    redirect_dns: bool = False
    #: ENABLE_INBOUND_IPV6: IPv6 rules and routes too.
    enable_ipv6: bool = False
    #: HOST_PROBE_SNAT_IP / HOST_PROBE_SNAT_IPV6: what kubelet's probes are SNATed to on the node.
    host_probe_snat_v4: ipaddress.IPv4Address = DEFAULT_HOST_PROBE_SNAT_V4
    host_probe_snat_v6: ipaddress.IPv6Address = DEFAULT_HOST_PROBE_SNAT_V6
    #: The pod does not capture inbound (`ambient.istio.io/bypass-inbound-capture`).
    ingress_mode: bool = False
    #: Interfaces whose inbound traffic goes to ztunnel's outbound port (`istio.io/reroute-virtual-interfaces`).
    virtual_interfaces: tuple[str, ...] = ()
    #: The pod's own DNS capture choice over `redirect_dns`.
    dns_proxy: DnsOverride = "unset"

    def __post_init__(self) -> None:
        if not isinstance(self.host_probe_snat_v4, ipaddress.IPv4Address):
            raise SettingsError(SettingIssue("host_probe_snat_v4", str(self.host_probe_snat_v4), "not an IPv4 address"))
        if not isinstance(self.host_probe_snat_v6, ipaddress.IPv6Address):
            raise SettingsError(SettingIssue("host_probe_snat_v6", str(self.host_probe_snat_v6), "not an IPv6 address"))
        if self.dns_proxy not in ("unset", "enabled", "disabled"):
            raise SettingsError(SettingIssue("dns_proxy", str(self.dns_proxy), "must be unset, enabled or disabled"))
        parse_name_list("virtual_interfaces", list(self.virtual_interfaces))

    @classmethod
    def from_values(cls, **values: object) -> AmbientSettings:
        """Settings from loose values: addresses as text, interfaces as `"a,b"`, booleans as text."""
        from meshviz.engine.istio.settings import parse_bool

        out: dict[str, object] = {}
        for key, value in values.items():
            if key in ("redirect_dns", "enable_ipv6", "ingress_mode"):
                out[key] = parse_bool(key, value)
            elif key in ("host_probe_snat_v4", "host_probe_snat_v6"):
                try:
                    out[key] = ipaddress.ip_address(str(value).strip())
                except ValueError:
                    raise SettingsError(SettingIssue(key, str(value), "not an IP address")) from None
            elif key == "virtual_interfaces":
                out[key] = parse_name_list(key, value)
            elif key == "dns_proxy":
                out[key] = str(value).strip().lower()
            else:
                raise SettingsError(SettingIssue(key, str(value), "unknown setting"))
        return cls(**out)  # type: ignore[arg-type]  # checked by __post_init__

    @property
    def dns_captured(self) -> bool:
        """DNS capture after the pod's override."""
        if self.dns_proxy == "enabled":
            return True
        if self.dns_proxy == "disabled":
            return False
        return self.redirect_dns


def ambient_settings_from_pod(
    pod: Mapping[str, Any], base: AmbientSettings | None = None
) -> tuple[AmbientSettings, tuple[str, ...]]:
    """The pod's overrides (its annotations, as the node agent reads them) over the agent's `base` settings,
    and notes on annotations the agent ignores."""
    base = base or AmbientSettings()
    metadata = pod.get("metadata") or {}
    annotations: Mapping[str, Any] = metadata.get("annotations") or {}
    notes: list[str] = []

    def flag(name: str) -> bool | None:
        if name not in annotations:
            return None
        value = _GO_BOOLS.get(str(annotations[name]))
        if value is None:
            notes.append(f"{name}={annotations[name]!r} is not a boolean: the node agent ignores it")
        return value

    ingress = flag(ANNOTATION_BYPASS_INBOUND)
    dns = flag(ANNOTATION_DNS_CAPTURE)
    interfaces = base.virtual_interfaces
    if ANNOTATION_VIRTUAL_INTERFACES in annotations:
        items = [i.strip() for i in str(annotations[ANNOTATION_VIRTUAL_INTERFACES]).split(",")]
        interfaces = tuple(i for i in items if i)
    settings = replace(
        base,
        ingress_mode=base.ingress_mode if ingress is None else ingress,
        dns_proxy=base.dns_proxy if dns is None else ("enabled" if dns else "disabled"),
        virtual_interfaces=interfaces,
    )
    return settings, tuple(notes)


@dataclass(frozen=True)
class GeneratedAmbientNftables:
    """What the node agent programs: the `nft -f` script, its operations, and the netlink routing."""

    settings: AmbientSettings
    where: Literal["pod", "host"]
    operations: tuple[NftOperation, ...]
    ip_rule: tuple[str, ...] = ()
    ip_route: tuple[str, ...] = ()

    @property
    def script(self) -> str:
        return script_text(self.operations)

    @property
    def state(self) -> NftState:
        return NftState().apply(self.operations)


def _operations(b: NftRuleBuilder, chains: dict[str, tuple[NftChain, ...]]) -> tuple[NftOperation, ...]:
    ops: list[NftOperation] = []
    for table, declared in chains.items():
        ops += table_operations(
            table, declared, b.rules_of(table), policy=IndexPolicy.EMPTY_ONLY, declare_jump_targets=True
        )
    return tuple(ops)


def _inpod_rules(s: AmbientSettings) -> NftRuleBuilder:
    b = NftRuleBuilder(ipv6=s.enable_ipv6)
    dns = s.dns_captured
    mark, mask = _hex(INPOD_MARK), _hex(INPOD_MASK)
    conn_mark, conn_mask = _hex(INPOD_TPROXY_MARK), _hex(INPOD_TPROXY_MASK)
    probe_v4, probe_v6 = str(s.host_probe_snat_v4), str(s.host_probe_snat_v6)
    outbound, plaintext, dns_port = (
        f":{ZTUNNEL_OUTBOUND_PORT}",
        f":{ZTUNNEL_INBOUND_PLAINTEXT_PORT}",
        f":{DNS_CAPTURE_PORT}",
    )

    b.append(AMBIENT_MANGLE, PREROUTING, "jump", ISTIO_PREROUTING)
    b.append(AMBIENT_MANGLE, OUTPUT, "jump", ISTIO_OUTPUT)
    b.append(AMBIENT_NAT, OUTPUT, "jump", ISTIO_OUTPUT)
    if dns:
        b.append(AMBIENT_RAW, PREROUTING, "jump", ISTIO_PREROUTING)
        b.append(AMBIENT_RAW, OUTPUT, "jump", ISTIO_OUTPUT)
    b.append(AMBIENT_NAT, PREROUTING, "jump", ISTIO_PREROUTING)

    # Virtual interfaces first: their inbound is outbound, straight to ztunnel's outbound port (TCP only).
    for iface in s.virtual_interfaces:
        b.append(AMBIENT_NAT, ISTIO_PREROUTING, "iifname", iface, "meta l4proto tcp", COUNTER, "redirect to", outbound)
        b.append(AMBIENT_NAT, ISTIO_PREROUTING, "iifname", iface, "meta l4proto tcp", COUNTER, "return")

    # ztunnel's packets give their connection the connmark (Istio writes this match with `&`, the others `and`).
    b.append(
        AMBIENT_MANGLE, ISTIO_PREROUTING, "meta mark & 0xfff ==", mark, COUNTER,
        "ct mark set ct mark & 0xfffff000 | ", conn_mark,
    )  # fmt: skip

    if not s.ingress_mode:
        # Kubelet's probes, SNATed on the node, are not captured.
        b.append(AMBIENT_NAT, ISTIO_PREROUTING, "meta l4proto tcp", "ip saddr", probe_v4, COUNTER, "accept")
        b.append_v6(AMBIENT_NAT, ISTIO_PREROUTING, "meta l4proto tcp", "ip6 saddr", probe_v6, COUNTER, "accept")
    b.append(AMBIENT_NAT, ISTIO_OUTPUT, "meta l4proto tcp", "ip daddr", probe_v4, COUNTER, "accept")
    b.append_v6(AMBIENT_NAT, ISTIO_OUTPUT, "meta l4proto tcp", "ip6 daddr", probe_v6, COUNTER, "accept")

    if not s.ingress_mode:
        # Inbound not for localhost, not HBONE and not ztunnel's own: to the plaintext inbound port.
        # The IPv4 rule's mask parameter ends in a blank in Istio's code, hence its double blank.
        tunnel = str(ZTUNNEL_INBOUND_PORT)
        b.append(
            AMBIENT_NAT, ISTIO_PREROUTING, "ip daddr", "!=", "127.0.0.1/32", "tcp dport", "!=", tunnel,
            "mark and 0xfff ", "!=", mark, COUNTER, "redirect to", plaintext,
        )  # fmt: skip
        b.append_v6(
            AMBIENT_NAT, ISTIO_PREROUTING, "ip6 daddr", "!=", "::1/128", "tcp dport", "!=", tunnel,
            "mark and 0xfff", "!=", mark, COUNTER, "redirect to", plaintext,
        )  # fmt: skip

    # Outbound packets of accepted connections get the connmark back as their mark (policy routing to lo).
    b.append(AMBIENT_MANGLE, ISTIO_OUTPUT, "ct mark and", conn_mask, "==", conn_mark, COUNTER, "meta mark set ct mark")

    if dns:
        b.append(
            AMBIENT_NAT, ISTIO_OUTPUT, "oifname", "!=", "lo", "mark and", mask, "!=", mark, "udp dport", "53", COUNTER,
            "redirect to", dns_port,
        )  # fmt: skip
        b.append(
            AMBIENT_NAT, ISTIO_OUTPUT, "ip daddr", "!=", "127.0.0.1/32", "tcp dport", "53", "mark and", mask, "!=", mark,
            COUNTER, "redirect to", dns_port,
        )  # fmt: skip
        b.append_v6(
            AMBIENT_NAT, ISTIO_OUTPUT, "ip6 daddr", "!=", "::1/128", "tcp dport", "53", "mark and", mask, "!=", mark,
            COUNTER, "redirect to", dns_port,
        )  # fmt: skip
        # ztunnel to upstream resolvers and back in conntrack zone 1.
        b.append(
            AMBIENT_RAW, ISTIO_OUTPUT, "udp dport", "53", "meta mark and", mask, "==", mark, COUNTER, "ct zone set", "1"
        )
        b.append(
            AMBIENT_RAW, ISTIO_PREROUTING, "udp sport", "53", "meta mark and", mask, "!=", mark, COUNTER,
            "ct zone set", "1",
        )  # fmt: skip

    b.append(AMBIENT_NAT, ISTIO_OUTPUT, "meta l4proto tcp", "mark and", conn_mask, "==", conn_mark, COUNTER, "accept")
    # The application reaching itself over lo by its own address is left alone.
    b.append(AMBIENT_NAT, ISTIO_OUTPUT, "oifname", "lo", "ip daddr", "!=", "127.0.0.1/32", COUNTER, "accept")
    b.append_v6(AMBIENT_NAT, ISTIO_OUTPUT, "oifname", "lo", "ip6 daddr", "!=", "::1/128", COUNTER, "accept")
    b.append(
        AMBIENT_NAT, ISTIO_OUTPUT, "meta l4proto tcp", "ip daddr", "!=", "127.0.0.1/32", "mark and", mask, "!=", mark,
        COUNTER, "redirect to", outbound,
    )  # fmt: skip
    b.append_v6(
        AMBIENT_NAT, ISTIO_OUTPUT, "meta l4proto tcp", "ip6 daddr", "!=", "::1/128", "mark and", mask, "!=", mark,
        COUNTER, "redirect to", outbound,
    )  # fmt: skip
    return b


def generate_ambient_inpod(settings: AmbientSettings) -> GeneratedAmbientNftables:
    """The in-pod rules (`AppendInpodRules`) and the mark rule and loopback routes added with them."""
    operations = _operations(_inpod_rules(settings), AMBIENT_CHAINS)
    fwmark = f"{_hex(INPOD_TPROXY_MARK)}/{_hex(INPOD_TPROXY_MASK)}"
    families = ("", "-6 ") if settings.enable_ipv6 else ("",)
    ip_rule = tuple(
        f"{six}rule add fwmark {fwmark} pref {INPOD_RULE_PRIORITY} lookup {ROUTE_TABLE_INBOUND}" for six in families
    )
    # The IPv6 route is skipped when lo has IPv6 disabled (net.ipv6.conf.lo.disable_ipv6 = 1).
    ip_route = tuple(
        f"{six}route add local {'::/0' if six else '0.0.0.0/0'} dev lo table {ROUTE_TABLE_INBOUND}" for six in families
    )
    return GeneratedAmbientNftables(settings, "pod", operations, ip_rule, ip_route)


def generate_ambient_host(settings: AmbientSettings, kubelet_uid: str) -> GeneratedAmbientNftables:
    """The node's rule (`CreateHostRulesForHealthChecks`): kubelet's probes to pods in the probe sets are
    SNATed to the probe address, matched by kubelet's uid (nftables has no `--socket-exists`)."""
    uid = kubelet_uid.strip()
    if not uid.isdigit():
        raise SettingsError(SettingIssue("kubelet_uid", kubelet_uid, "not a uid"))
    b = NftRuleBuilder(ipv6=settings.enable_ipv6)
    b.append(
        AMBIENT_NAT, POSTROUTING, "meta l4proto tcp", "skuid", uid, "ip", "daddr", f"@{PROBE_IP_SET}-v4", COUNTER,
        "snat", "to", str(settings.host_probe_snat_v4),
    )  # fmt: skip
    b.append_v6(
        AMBIENT_NAT, POSTROUTING, "meta l4proto tcp", "skuid", uid, "ip6", "daddr", f"@{PROBE_IP_SET}-v6", COUNTER,
        "snat", "to", str(settings.host_probe_snat_v6),
    )  # fmt: skip
    operations = _operations(b, {AMBIENT_NAT: _HOST_CHAINS})
    return GeneratedAmbientNftables(settings, "host", operations)
