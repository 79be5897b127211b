"""Every kind of evidence meshviz reads, in one place: its name, the source its errors name, the form/API field, the
command-line flag, the file names it has in a bundle, and its parser.

The CLI's flags, the API's and the form's fields, Django's validation and the bundle reader are all derived from
`EVIDENCE_KINDS`; adding a kind here is what adds it everywhere.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core.model import Family


@dataclass(frozen=True)
class EvidenceKind:
    name: str  # the engine's name (Evidence's field, load_pod's keyword)
    source: str  # what its errors name when the caller gives no file name
    field: str  # the form's and the API's field (and the Analysis model's)
    flag: str  # the command line's flag
    help: str  # what to give
    files: tuple[str, ...]  # its names in a meshviz bundle, the preferred first
    parser: str  # "module:function" of its parser (imported on first use: the CLI starts without every parser)
    family: Family | None = None  # the parser's `family` keyword, when the kind is one family's

    @property
    def parse(self) -> Callable[..., Any]:
        """The parser: text (and `source=`) -> a result with .errors and .warnings."""
        module, _, name = self.parser.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return functools.partial(fn, family=self.family) if self.family is not None else fn


EVIDENCE_KINDS: tuple[EvidenceKind, ...] = (
    EvidenceKind(
        "iptables",
        "iptables",
        "iptables",
        "--iptables",
        "iptables-save output (IPv4; IPv6 too when both are in one file)",
        ("iptables-legacy-save.txt", "iptables-nft-save.txt", "iptables-save.txt"),
        "meshviz.engine.netfilter.parser:parse_iptables",
    ),
    EvidenceKind(
        "ip6tables",
        "ip6tables",
        "ip6tables",
        "--ip6tables",
        "ip6tables-save output",
        ("ip6tables-legacy-save.txt", "ip6tables-nft-save.txt", "ip6tables-save.txt"),
        "meshviz.engine.netfilter.parser:parse_iptables",
        Family.IPV6,
    ),
    EvidenceKind(
        "nftables",
        "nftables",
        "nftables",
        "--nftables",
        "nft list ruleset output (or nft -j list ruleset, or an nft -f script)",
        ("nft-ruleset.txt",),
        "meshviz.engine.nftables.parser:parse_nftables",
    ),
    EvidenceKind(
        "ip_rule",
        "ip-rule",
        "ip_rule",
        "--ip-rule",
        "ip rule output (or ip rule add commands)",
        ("ip-rule.txt",),
        "meshviz.engine.routing.ip_rule:parse_ip_rules",
    ),
    EvidenceKind(
        "ip6_rule",
        "ip6-rule",
        "ip6_rule",
        "--ip6-rule",
        "ip -6 rule output",
        ("ip6-rule.txt",),
        "meshviz.engine.routing.ip_rule:parse_ip_rules",
        Family.IPV6,
    ),
    EvidenceKind(
        "ip_route",
        "ip-route",
        "ip_route",
        "--ip-route",
        "ip route show table all output",
        ("ip-route.txt",),
        "meshviz.engine.routing.ip_route:parse_ip_routes",
    ),
    EvidenceKind(
        "ip6_route",
        "ip6-route",
        "ip6_route",
        "--ip6-route",
        "ip -6 route show table all output",
        ("ip6-route.txt",),
        "meshviz.engine.routing.ip_route:parse_ip_routes",
        Family.IPV6,
    ),
    EvidenceKind(
        "addr",
        "ip-addr",
        "addr",
        "--addr",
        "ip -o addr output (optional: interfaces and their addresses)",
        ("ip-addr.txt",),
        "meshviz.engine.routing.addr:parse_ip_addr",
    ),
    EvidenceKind(
        "sysctl",
        "sysctl",
        "sysctl",
        "--sysctl",
        "sysctl -a output (or key = value lines)",
        ("sysctl.txt",),
        "meshviz.engine.routing.sysctl:parse_sysctls",
    ),
    EvidenceKind(
        "envoy",
        "envoy",
        "envoy_config_dump",
        "--envoy",
        "Envoy's /config_dump JSON (repeat for istioctl proxy-config listener/cluster/route -o json outputs)",
        ("config_dump.json",),
        "meshviz.engine.envoy.parser:parse_config_dump",
    ),
)

KIND_BY_NAME: dict[str, EvidenceKind] = {k.name: k for k in EVIDENCE_KINDS}
KIND_BY_FIELD: dict[str, EvidenceKind] = {k.field: k for k in EVIDENCE_KINDS}

#: Each evidence kind and the `source` its errors name when the caller gives no file name.
EVIDENCE_SOURCES: dict[str, str] = {k.name: k.source for k in EVIDENCE_KINDS}
