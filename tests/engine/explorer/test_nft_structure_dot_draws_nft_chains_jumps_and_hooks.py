"""The structure graph of an nft pod draws its nft tables (of the drawn family) as clusters of chain nodes with one
row per rule (hits and highlight like iptables' rows), base chains fed from their hook at their priority, jump and
goto edges from the rule (also through verdict maps); iptables-nft's tables are left out when iptables-save is drawn."""

from __future__ import annotations

from meshviz.engine.explorer.structure import node_id, structure_dot
from meshviz.engine.pipeline.evidence import pod_of

from .nft_support import IPTABLES_NFT_LIST, IPTABLES_NFT_RESTORE, KUBE_PROXY_SCRIPT, TPROXY_LIST, nft_evidence


def test_nft_chains_rows_and_edges() -> None:
    snapshot = pod_of(nft_evidence(TPROXY_LIST)).snapshot
    tproxy = ("inet istio-proxy-mangle", "istio-tproxy", 1)
    dot = structure_dot(snapshot, None, hits={tproxy: [1]}, highlight=[tproxy])
    assert "nft table inet istio-proxy-mangle" in dot
    assert f'id="{node_id("chain", "inet istio-proxy-mangle", "istio-tproxy")}"' in dot
    assert f'ID="{node_id("rule", *tproxy)}"' in dot
    assert 'BGCOLOR="#fff3c4"' in dot  # the highlighted row
    assert "filter hook prerouting priority -150 · policy accept" in dot
    assert "label=<priority -150>" in dot  # PREROUTING -> the mangle base chain
    assert "label=<jump #6>" in dot  # istio-inbound #6 jumps to istio-tproxy


def test_verdict_maps_give_edges_and_iptables_nft_tables_are_not_drawn_twice() -> None:
    dot = structure_dot(pod_of(nft_evidence(KUBE_PROXY_SCRIPT)).snapshot, None)
    assert "label=<goto #1>" in dot  # services #1: the verdict map's goto endpoint-a
    both = structure_dot(pod_of(nft_evidence(IPTABLES_NFT_LIST, IPTABLES_NFT_RESTORE)).snapshot, None)
    alone = structure_dot(pod_of(nft_evidence(IPTABLES_NFT_LIST)).snapshot, None)
    assert "nft table ip mangle" in alone and "nft table ip mangle" not in both
