"""The nftables generators write Istio's nftables goldens byte for byte, from the settings of each case."""

from __future__ import annotations

import re

import pytest

from meshviz.engine.istio import CaptureSettings
from meshviz.engine.istio.nft_ambient import AmbientSettings, generate_ambient_host, generate_ambient_inpod
from meshviz.engine.istio.nft_builder import (
    NftChain,
    NftOperation,
    NftRuleBuilder,
    NftState,
    NftTable,
    rule_operations,
)
from meshviz.engine.istio.nft_generator import generate_nftables

from .nft_golden_cases import (
    BUILDER_CHAIN,
    BUILDER_TABLE,
    KUBELET_UID,
    NFT_DIR,
    NFT_GOLDEN_CASES,
    NftGoldenCase,
    fixture_goldens,
)


def _builder_dump(case: NftGoldenCase) -> str:
    """The builder test: a table and a chain, the case's calls as rules, then the tables as dumped."""
    builder = NftRuleBuilder(ipv6=True)
    for method, args in case.calls:
        getattr(builder, method)(BUILDER_TABLE, BUILDER_CHAIN, *args)
    ops = [
        NftOperation("add", NftTable(BUILDER_TABLE)),
        NftOperation("add", NftChain(BUILDER_TABLE, BUILDER_CHAIN)),
        *rule_operations(builder.rules_of(BUILDER_TABLE)),
    ]
    state = NftState().apply(ops)
    assert state.errors == []
    return state.dump()


def _generate(case: NftGoldenCase) -> str:
    if case.kind == "capture":
        return generate_nftables(CaptureSettings.from_values(**case.settings)).script
    if case.kind == "cni":
        settings = AmbientSettings.from_values(**case.settings)
        if case.where == "host":
            return generate_ambient_host(settings, KUBELET_UID).script
        return generate_ambient_inpod(settings).script
    return _builder_dump(case)


def _first_difference(want: str, got: str) -> str:
    wanted, made = want.splitlines(keepends=True), got.splitlines(keepends=True)
    for number, (a, b) in enumerate(zip(wanted, made, strict=False), 1):
        if a != b:
            return f"line {number}: golden {a!r}, generated {b!r}"
    return f"golden has {len(wanted)} lines, generated {len(made)}"


@pytest.mark.parametrize("case", NFT_GOLDEN_CASES, ids=lambda c: c.id)
def test_generated_script_is_the_golden_byte_for_byte(case: NftGoldenCase) -> None:
    want = case.golden.read_bytes().decode()
    got = _generate(case)
    assert got == want, f"{case.id} ({case.settings or case.calls}): {_first_difference(want, got)}"


def test_every_nftables_golden_has_exactly_one_case() -> None:
    by_golden = [c.golden for c in NFT_GOLDEN_CASES]
    assert len(by_golden) == len(set(by_golden)), "two cases claim the same golden"
    files = fixture_goldens()
    assert sorted(by_golden) == files, (
        f"goldens without a case: {sorted(set(files) - set(by_golden))}; "
        f"cases without a golden: {sorted(set(by_golden) - set(files))}"
    )
    assert len(files) == 51  # 28 capture + 14 cni + 9 builder


def test_the_fixtures_are_every_golden_the_corpus_lists() -> None:
    """README.md carries the corpus's own rows: each listed golden is a fixture with the listed size."""
    rows = re.findall(r"^\| `istio-nftables/([^`]+\.golden)` \| (\d+) \|", (NFT_DIR / "README.md").read_text(), re.M)
    listed = {name: int(size) for name, size in rows}
    present = {p.relative_to(NFT_DIR).as_posix(): p.stat().st_size for p in fixture_goldens()}
    assert listed == present
