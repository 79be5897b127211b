"""The inputs behind every Istio nftables golden in tests/fixtures/istio-nftables, as data.

Transcribed from istio/istio @ 86c9f01: `tools/istio-nftables/pkg/capture/run_test.go` (the same cases and
baseline as the iptables set, so `CAPTURE_SETTINGS` is reused, plus `inbound-ports-empty-tproxy`),
`cni/pkg/nftables/nftables_test.go` + `common_test.go` (ambient: each case without and with IPv6, the
probe SNAT addresses of `constructTestConfig`, kubelet uid 1000 for the host rules) and
`tools/istio-nftables/pkg/builder/nftables_builder_test.go` (the builder calls of each case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .golden_cases import CAPTURE_SETTINGS

NFT_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "istio-nftables"
CAPTURE_DIR = NFT_DIR / "capture"
CNI_DIR = NFT_DIR / "cni"
BUILDER_DIR = NFT_DIR / "builder"

#: run_test.go's cases: the iptables ones plus an empty inbound port list in TPROXY mode.
NFT_CAPTURE_SETTINGS: dict[str, dict[str, Any]] = {
    **CAPTURE_SETTINGS,
    "inbound-ports-empty-tproxy": {"inbound_ports_include": "", "interception_mode": "TPROXY"},
}

#: constructTestConfig of the cni nftables test (the IPv6 probe address is not the agent's default).
AMBIENT_BASE: dict[str, Any] = {
    "host_probe_snat_v4": "169.254.7.127",
    "host_probe_snat_v6": "e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164",
}
VIRTUAL = "fake1s0f0,fake1s0f1"

#: name -> (where the rules go, settings over AMBIENT_BASE); each is run with IPv6 off and on.
AMBIENT_CASES: dict[str, tuple[Literal["pod", "host"], dict[str, Any]]] = {
    "default": ("pod", {"redirect_dns": True}),
    "ingress": ("pod", {"ingress_mode": True}),
    "virtual_interfaces": ("pod", {"virtual_interfaces": VIRTUAL}),
    "ingress_and_virtual_interfaces": ("pod", {"ingress_mode": True, "virtual_interfaces": VIRTUAL}),
    "dns_pod_enabled_and_off_globally": ("pod", {"redirect_dns": False, "dns_proxy": "enabled"}),
    "dns_pod_disabled_and_on_globally": ("pod", {"redirect_dns": True, "dns_proxy": "disabled"}),
    "hostprobe": ("host", {"redirect_dns": True}),
}
KUBELET_UID = "1000"

# The builder test: (method, args) calls on a builder with IPv6 enabled, table inet-table, chain test-chain.
BUILDER_TABLE = "inet-table"
BUILDER_CHAIN = "test-chain"
_JUMP = ("meta", "l4proto", "tcp", "jump", BUILDER_CHAIN)
_REDIRECT = ("meta", "l4proto", "tcp", "redirect", "to", ":15001")
_TUNNEL = ("tcp", "dport", "15008", "return")
_V4 = ("ip", "daddr", "127.0.0.1", "return")
_V6 = ("ip6", "daddr", "::ffff:7f00:1", "return")
BuilderCall = tuple[str, tuple[Any, ...]]
BUILDER_CASES: dict[str, tuple[BuilderCall, ...]] = {
    "add-table-chain": (),
    "append-single-v4": (("append", _V4),),
    "append-single-v6": (("append_v6", _V6),),
    "append-multi": (("append", _TUNNEL), ("append", _JUMP), ("append", _REDIRECT)),
    "insert-single-v4": (("append", _TUNNEL), ("insert", (0, *_V4))),
    "insert-single-v6": (("append", _TUNNEL), ("insert_v6", (0, *_V6))),
    "insert-multi": (("append", _TUNNEL), ("insert", (0, *_JUMP)), ("insert", (1, *_REDIRECT))),
    "append-insert-multi": (("append", _TUNNEL), ("insert", (0, *_JUMP)), ("append", _REDIRECT)),
    "multi-rules-v4-v6": (("append", _V4), ("insert", (0, *_TUNNEL)), ("append_v6", _V6)),
}


@dataclass(frozen=True)
class NftGoldenCase:
    kind: Literal["capture", "cni", "builder"]
    name: str
    golden: Path
    settings: dict[str, Any] = field(default_factory=dict)
    where: Literal["pod", "host"] = "pod"
    calls: tuple[BuilderCall, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.golden.name}"


def _cases() -> list[NftGoldenCase]:
    cases = [NftGoldenCase("capture", n, CAPTURE_DIR / f"{n}.golden", s) for n, s in NFT_CAPTURE_SETTINGS.items()]
    for name, (where, settings) in AMBIENT_CASES.items():
        for ipv6, suffix in ((False, ""), (True, "_ipv6")):
            values = {**AMBIENT_BASE, **settings, "enable_ipv6": ipv6}
            cases.append(NftGoldenCase("cni", name, CNI_DIR / f"{name}{suffix}.golden", values, where))
    cases += [NftGoldenCase("builder", n, BUILDER_DIR / f"{n}.golden", calls=c) for n, c in BUILDER_CASES.items()]
    return cases


NFT_GOLDEN_CASES: tuple[NftGoldenCase, ...] = tuple(_cases())


def fixture_goldens() -> list[Path]:
    """Every nftables golden in the fixtures."""
    return sorted(NFT_DIR.glob("*/*.golden"))
