"""The pod's profile reads a native nft pod's capture from the chains that may hold it: a listing's chain not read
yet is searched as text for the statements the profile looks for (`tproxy`, `redirect`, `ct mark`) or picked by
name (`istio-output`, `istio-redirect`, ...), so kube-proxy's chains stay unbuilt; the profile is the one that
reading every rule gives."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from meshviz.engine.evidence.profile import derive_profile
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.pipeline.load import load_snapshot

LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"
POD_IP = ip_address("10.0.0.10")
KUBE = (LISTED / "kube-proxy-20-services.nft-list").read_text()


def _built(ruleset: object) -> list[str]:
    return [
        f"{t.label} {c.name}"
        for t in ruleset.tables  # type: ignore[attr-defined]
        for c in t.chains
        if c.pending_rules() is None and c.rule_count()
    ]


@pytest.mark.parametrize("istio", ["capture-tproxy.list", "capture-basic-exclude-nic.list", "capture-dns-uid-gid.list"])
def test_the_profile_of_a_kube_proxy_node_pod_builds_no_kube_proxy_chain(istio: str) -> None:
    text = (LISTED / istio).read_text() + KUBE
    snap = load_snapshot(nftables=text, pod_ip="10.0.0.10").snapshot
    assert snap.nftables is not None
    lazy = derive_profile(snap, None, pod_ip=POD_IP)
    assert not [c for c in _built(snap.nftables) if "kube-proxy" in c]
    eager = parse_nftables(text, "eager", fast_listing=False).ruleset
    assert eager.rules()  # everything built
    assert lazy == derive_profile(replace(snap, nftables=eager), None, pod_ip=POD_IP)


def test_a_chain_whose_text_lacks_the_words_may_not_contain_them_and_a_built_one_always_may() -> None:
    rs = parse_nftables(KUBE, "kube.list").ruleset
    chains = [c for t in rs.tables for c in t.chains if c.pending_rules() is not None]
    assert chains, "the listing parser defers kube-proxy's chains"
    assert not any(c.may_contain("tproxy") for c in chains)
    some = chains[0]
    _ = some.rules  # built now
    assert some.may_contain("tproxy")
