"""The tables the generated scripts leave behind (`NftState`) are the ones the kernel listed after loading them.

`tests/fixtures/istio-nftables/listed/` holds `nft list ruleset` after `nft -f GOLDEN` in a fresh network namespace
(see its README). nft prints rules in its own canonical form (`meta skuid`, `0x00000539`, addresses without /32),
so each rule is compared by what it does - its verdict or statement and which address family it matches - and
each chain by its kind, hook and the sequence of its rules. That checks the builder's insert/append placement and
the chains declared against the kernel, not just against Istio's text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshviz.engine.istio import CaptureSettings
from meshviz.engine.istio.nft_ambient import AmbientSettings, generate_ambient_host, generate_ambient_inpod
from meshviz.engine.istio.nft_builder import NftState
from meshviz.engine.istio.nft_generator import generate_nftables

from .nft_golden_cases import KUBELET_UID, NFT_DIR, NFT_GOLDEN_CASES, NftGoldenCase

LISTED = NFT_DIR / "listed"
_VERDICTS = (
    (re.compile(r"\bjump (\S+)"), "jump {}"),
    (re.compile(r"\btproxy ip6? to :(\d+)"), "tproxy {}"),
    (re.compile(r"\bredirect to :(\d+)"), "redirect {}"),
    (re.compile(r"\bsnat (?:ip6? )?to (\S+)"), "snat {}"),
    (re.compile(r"\bct zone set (\d+)"), "zone {}"),
    (re.compile(r"\bct mark set\b()"), "ct mark set{}"),
    (re.compile(r"\bmeta mark set\b()"), "meta mark set{}"),
    (re.compile(r"\b(return|accept|drop)$"), "{}"),
)

Listing = dict[tuple[str, str], tuple[str | None, tuple[tuple[str, ...], ...]]]


def _signature(rule: str) -> tuple[str, ...]:
    verdict = next((fmt.format(*m.groups()) for pattern, fmt in _VERDICTS if (m := pattern.search(rule))), rule)
    families = tuple(f for f, p in (("ip", r"\bip [sd]addr"), ("ip6", r"\bip6 [sd]addr")) if re.search(p, rule))
    return (verdict, *families)


def _read_listing(text: str) -> Listing:
    """(table, chain) -> (\"type hook\" or None, rule signatures), from `nft list ruleset` output."""
    out: Listing = {}
    table = chain = None
    kind: str | None = None
    rules: list[tuple[str, ...]] = []
    for line in text.splitlines():
        if m := re.match(r"^table inet (\S+) \{$", line):
            table = m[1]
        elif m := re.match(r"^\tchain (\S+) \{$", line):
            chain, kind, rules = m[1], None, []
        elif chain is not None and (m := re.match(r"^\t\ttype (\S+) hook (\S+) priority", line)):
            kind = f"{m[1]} {m[2]}"
        elif chain is not None and line.startswith("\t\t"):
            rules.append(_signature(line.strip()))
        elif chain is not None and line == "\t}":
            assert table is not None
            out[(table, chain)] = (kind, tuple(rules))
            chain = None
    return out


def _generated_state(case: NftGoldenCase) -> NftState:
    if case.kind == "capture":
        return generate_nftables(CaptureSettings.from_values(**case.settings)).state
    settings = AmbientSettings.from_values(**case.settings)
    made = generate_ambient_host(settings, KUBELET_UID) if case.where == "host" else generate_ambient_inpod(settings)
    return made.state


def _as_listing(state: NftState, tables: set[str]) -> Listing:
    out: Listing = {}
    for table in sorted(tables):
        for chain in state.chains(table):
            kind = f"{chain.type} {chain.hook}" if chain.is_base else None
            out[(table, chain.name)] = (kind, tuple(_signature(r) for r in state.rules(table, chain.name)))
    return out


def _listed(case: NftGoldenCase) -> Path:
    return LISTED / case.kind / f"{case.golden.stem}.nft"


CASES = [c for c in NFT_GOLDEN_CASES if c.kind != "builder" and _listed(c).exists()]


def test_every_golden_the_kernel_accepted_here_has_a_listing() -> None:
    """All capture and cni goldens but the four owner-group ones (group names this host does not have)."""
    missing = sorted(c.golden.name for c in NFT_GOLDEN_CASES if c.kind != "builder" and not _listed(c).exists())
    assert missing == [
        "ipv6-dns-outbound-owner-groups-exclude.golden",
        "ipv6-dns-outbound-owner-groups.golden",
        "outbound-owner-groups-exclude.golden",
        "outbound-owner-groups.golden",
    ]
    assert len(CASES) == 38


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_generated_tables_are_what_the_kernel_listed(case: NftGoldenCase) -> None:
    kernel = _read_listing(_listed(case).read_text())
    tables = {t for t, _ in kernel}
    ours = _as_listing(_generated_state(case), tables)
    assert ours.keys() == kernel.keys(), case.id
    for key in kernel:
        assert ours[key] == kernel[key], f"{case.id} {key}"


def test_signature_reads_both_istios_and_the_kernels_spelling() -> None:
    istio = "oifname lo meta l4proto tcp ip6 daddr != ::1/128 skgid 1337 counter meta mark set 1338"
    kernel = 'oifname "lo" meta l4proto tcp ip6 daddr != ::1 meta skgid 1337 counter packets 0 bytes 0 meta mark set 0x0000053a'
    assert _signature(istio) == _signature(kernel) == ("meta mark set", "ip6")
