"""kube-proxy's nftables ruleset at several sizes, loaded with `nft -f` into a namespace and listed by nft
(`nft list ruleset`, `nft -a list ruleset`): the listing parser reads what nft prints exactly as the general
parser does (model, handles, source lines, errors), and defers every chain."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.nftables.serialize import nft_summary

from .conftest import require_netns

GEN = Path(__file__).resolve().parents[3] / "shared" / "bench" / "gen_kube_proxy_nft.py"


def _generate(services: int) -> str:
    spec = importlib.util.spec_from_file_location("gen_kube_proxy_nft", GEN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return str(mod.generate(services, 3, 7))


@pytest.mark.parametrize("services", [1, 150, 1200])
def test_nfts_listing_of_kube_proxys_ruleset_reads_the_same_through_the_listing_parser(services: int) -> None:
    require_netns()
    if not GEN.exists():
        pytest.skip(f"{GEN} not found")
    ns = f"mvnftlst{os.getpid()}x{services}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=_generate(services).encode(), check=True)
        listings = [
            subprocess.run(
                ["ip", "netns", "exec", ns, "nft", *flags, "list", "ruleset"], capture_output=True, check=True
            ).stdout.decode()
            for flags in ([], ["-a"])
        ]
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    for text in listings:
        fast = parse_nftables(text, "kube.list")
        assert fast.format == "list" and not fast.errors
        chains = fast.ruleset.tables[0].chains
        assert all(c.pending_rules() is not None for c in chains)
        summary = nft_summary(fast)
        full = parse_nftables(text, "kube.list", fast_listing=False)
        assert summary == nft_summary(full)
        assert fast == full
