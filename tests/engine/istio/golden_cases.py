"""The inputs behind every Istio capture golden in the corpus, as data.

Transcribed from tests/fixtures/corpus/istio-iptables/CASES.md and istio-cni/CASES.md (themselves restating
istio/istio's run_test.go and plugin_dryrun_test.go).  Each case is `settings` for
`CaptureSettings.from_values` over the case's baseline, and the flavour that produced the golden.

The CNI plugin cases also say which pod produced them (`pod`: annotations, istio-proxy environment, uid/gid),
so the pod reader can be checked against the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshviz.engine.istio import Flavour

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
CAPTURE_DIR = CORPUS / "istio-iptables"
LEGACY_DIR = CAPTURE_DIR / "legacy-1.23.0"
CNI_PLUGIN_DIR = CORPUS / "istio-cni" / "plugin"

#: Documented in SOURCES.md as stale: last changed in 2021, no longer referenced by the plugin's dry-run test.
STALE_GOLDENS = frozenset({"status-ports.txt.golden"})


@dataclass(frozen=True)
class GoldenCase:
    name: str
    flavour: Flavour
    golden: Path
    settings: dict[str, Any]
    pod: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.flavour}/{self.name}"


UID_GID_3_4_1_2 = {"proxy_uids": "3,4", "proxy_gids": "1,2"}
DNS_127_0_0_53 = {"redirect_dns": True, "dns_servers_v4": "127.0.0.53"}

# run_test.go's baseline is CaptureSettings()'s defaults: ports 15001/15006/15008, uid=gid=1337, mark 1337,
# table 133, owner groups '*', loopback 127.0.0.1/32, no inbound ports, REDIRECT, IPv4 only.
CAPTURE_SETTINGS: dict[str, dict[str, Any]] = {
    "empty": {},
    "basic-exclude-nic": {"exclude_interfaces": "not-istio-nic"},
    "drop-invalid": {"drop_invalid": True},
    "host-ipv4-loopback-cidr": {"host_ipv4_loopback_cidr": "127.0.0.1/8"},
    "inbound-ports-include": {"inbound_ports_include": "32000,31000"},
    "inbound-ports-wildcard": {"inbound_ports_include": "*"},
    "inbound-ports-tproxy": {"inbound_ports_include": "32000,31000", "interception_mode": "TPROXY"},
    "inbound-ports-wildcard-tproxy": {"inbound_ports_include": "*", "interception_mode": "TPROXY"},
    "tproxy": {
        "interception_mode": "TPROXY",
        "inbound_ports_include": "*",
        "outbound_ip_ranges_exclude": "1.1.0.0/16",
        "outbound_ip_ranges_include": "9.9.0.0/16",
        **DNS_127_0_0_53,
        "proxy_uids": "1337",
        "proxy_gids": "1337",
        "exclude_interfaces": "not-istio-nic",
        "enable_ipv6": True,
    },
    "ip-range": {
        "outbound_ip_ranges_exclude": "1.1.0.0/16",
        "outbound_ip_ranges_include": "9.9.0.0/16",
        **DNS_127_0_0_53,
        "enable_ipv6": False,
        **UID_GID_3_4_1_2,
    },
    "ipnets": {"outbound_ip_ranges_include": "10.0.0.0/8"},
    "ipnets-with-kube-virt-interfaces": {
        "reroute_virtual_interfaces": "eth1,eth2",
        "outbound_ip_ranges_include": "10.0.0.0/8",
    },
    "kube-virt-interfaces": {"reroute_virtual_interfaces": "eth1,eth2", "outbound_ip_ranges_include": "*"},
    "loopback-outbound-iprange": {
        "outbound_ip_ranges_include": "127.1.2.3/32",
        **DNS_127_0_0_53,
        "enable_ipv6": False,
        **UID_GID_3_4_1_2,
    },
    "outbound-ports-include": {"outbound_ports_include": "32000,31000"},
    "outbound-owner-groups": {"owner_groups_include": "java,202"},
    "outbound-owner-groups-exclude": {"owner_groups_exclude": "888,ftp"},
    "dns-uid-gid": {
        **DNS_127_0_0_53,
        "dns_servers_v6": "::127.0.0.53",
        **UID_GID_3_4_1_2,
        "enable_ipv6": True,
    },
    "ipv6-dns-uid-gid": {"enable_ipv6": True, "redirect_dns": True, **UID_GID_3_4_1_2},
    "ipv6-dns-outbound-owner-groups": {"enable_ipv6": True, "redirect_dns": True, "owner_groups_include": "java,202"},
    "ipv6-dns-outbound-owner-groups-exclude": {
        "enable_ipv6": True,
        "redirect_dns": True,
        "owner_groups_exclude": "888,ftp",
    },
    "ipv6-empty-inbound-ports": {"inbound_ports_include": "", "enable_ipv6": True},
    "ipv6-inbound-ports": {"inbound_ports_include": "4000,5000", "enable_ipv6": True},
    "ipv6-outbound-ports": {"inbound_ports_include": "", "outbound_ports_include": "32000,31000", "enable_ipv6": True},
    "ipv6-virt-interfaces": {
        "inbound_ports_include": "4000,5000",
        "reroute_virtual_interfaces": "eth0,eth1",
        "enable_ipv6": True,
    },
    "ipv6-ipnets": {
        "inbound_ports_include": "4000,5000",
        "inbound_ports_exclude": "6000,7000,",  # the trailing comma is part of the upstream case
        "reroute_virtual_interfaces": "eth0,eth1",
        "outbound_ip_ranges_exclude": "2001:db8::/32",
        "outbound_ip_ranges_include": "2001:db8::/32",
        "enable_ipv6": True,
    },
    "ipv6-uid-gid": {
        "inbound_ports_include": "4000,5000",
        "inbound_ports_exclude": "6000,7000",
        "reroute_virtual_interfaces": "eth0,eth1",
        **UID_GID_3_4_1_2,
        "enable_ipv6": True,
        "outbound_ip_ranges_exclude": "2001:db8::/32",
        "outbound_ip_ranges_include": "2001:db8::/32",
    },
}

# The 1.23.0 set has the same cases plus `logging`.
LEGACY_SETTINGS: dict[str, dict[str, Any]] = {**CAPTURE_SETTINGS, "logging": {"trace_logging": True}}

# What the CNI plugin hands istio-iptables for a pod with only the sidecar status annotation.
CNI_BASE: dict[str, Any] = {
    "inbound_ports_include": "*",
    "inbound_ports_exclude": "15020",
    "outbound_ip_ranges_include": "*",
    "outbound_ip_ranges_exclude": "",
    "outbound_ports_exclude": "15020",
    "proxy_uids": "1337",
    "proxy_gids": "1337",
}
CUSTOM_UID = {"proxy_uids": "1000670000", "proxy_gids": "1000670001"}
CUSTOM_UID_POD = {"run_as_user": 1000670000, "run_as_group": 1000670001}

# name -> (settings over CNI_BASE, the pod that produced them)
CNI_PLUGIN_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "basic": ({}, {}),
    "include-exclude-ip": (
        {"outbound_ip_ranges_include": "127.0.0.0/8", "outbound_ip_ranges_exclude": "10.0.0.0/8"},
        {
            "annotations": {
                "traffic.sidecar.istio.io/includeOutboundIPRanges": "127.0.0.0/8",
                "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8",
            }
        },
    ),
    "include-exclude-ports": (
        {
            "inbound_ports_include": "1111,2222",
            "inbound_ports_exclude": "3333,4444",
            "outbound_ports_exclude": "5555,6666",
        },
        {
            "annotations": {
                "traffic.sidecar.istio.io/includeInboundPorts": "1111,2222",
                "traffic.sidecar.istio.io/excludeInboundPorts": "3333,4444",
                "traffic.sidecar.istio.io/excludeOutboundPorts": "5555,6666",
            }
        },
    ),
    "tproxy": ({"interception_mode": "TPROXY"}, {"annotations": {"sidecar.istio.io/interceptionMode": "TPROXY"}}),
    "dns": ({"redirect_dns": True, "capture_all_dns": True}, {"env": {"ISTIO_META_DNS_CAPTURE": "true"}}),
    "invalid-drop": ({"drop_invalid": True}, {"env": {"INVALID_DROP": "true"}}),
    "custom-uid": (CUSTOM_UID, CUSTOM_UID_POD),
    "custom-uid-tproxy": (
        {**CUSTOM_UID, "interception_mode": "TPROXY"},
        {**CUSTOM_UID_POD, "annotations": {"sidecar.istio.io/interceptionMode": "TPROXY"}},
    ),
}


def _cases() -> list[GoldenCase]:
    cases = [GoldenCase(n, "capture", CAPTURE_DIR / f"{n}.golden", s) for n, s in CAPTURE_SETTINGS.items()]
    cases += [GoldenCase(n, "legacy-1.23", LEGACY_DIR / f"{n}.golden", s) for n, s in LEGACY_SETTINGS.items()]
    cases += [
        GoldenCase(n, "cni-plugin", CNI_PLUGIN_DIR / f"{n}.txt.golden", {**CNI_BASE, **s}, pod)
        for n, (s, pod) in CNI_PLUGIN_CASES.items()
    ]
    return cases


GOLDEN_CASES: tuple[GoldenCase, ...] = tuple(_cases())


def corpus_goldens() -> list[Path]:
    """Every golden the generator is measured against (the stale one excluded)."""
    files = sorted(CAPTURE_DIR.glob("*.golden")) + sorted(LEGACY_DIR.glob("*.golden"))
    files += sorted(p for p in CNI_PLUGIN_DIR.glob("*.txt.golden") if p.name not in STALE_GOLDENS)
    return files
