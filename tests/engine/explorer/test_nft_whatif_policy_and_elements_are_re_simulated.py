"""What-if on nft beyond rules: a base chain's policy and a set or map element, each re-simulated; the verdict diff
shows what changed, and the patch is the line a user would change (or the `nft` command they would run)."""

from __future__ import annotations

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.rule_table import hits_from_stories
from meshviz.engine.explorer.whatif import stored, whatif

from .nft_support import INBOUND, KUBE_PROXY_SCRIPT, OUTBOUND, TPROXY_LIST, nft_evidence


def test_a_drop_policy_on_the_mangle_prerouting_chain_changes_the_inbound_verdict_only() -> None:
    ev = nft_evidence(TPROXY_LIST)
    edit = Edit(op="policy", table="inet istio-proxy-mangle", chain="prerouting", value="drop")
    result = whatif(ev, [INBOUND, OUTBOUND], [edit])
    assert result.ok, result.errors
    assert [d.changed for d in result.diff] == [True, False]
    assert "type filter hook prerouting priority mangle; policy drop;" in result.patch
    assert result.changes == ("nft inet istio-proxy-mangle/prerouting: policy accept -> drop",)


def test_removing_the_service_from_the_verdict_map_stops_the_dnat() -> None:
    """The verdict (the destination is reached, not intercepted) stays; the trace no longer goes through the
    endpoint's DNAT rule."""
    ev = nft_evidence(KUBE_PROXY_SCRIPT)
    edit = Edit(
        op="delete_element",
        table="ip kube-proxy",
        set="service-ips",
        element="172.16.0.10 . tcp . 80 : goto endpoint-a",
    )
    result = whatif(ev, [OUTBOUND], [edit])
    assert result.ok, result.errors
    endpoint = ("ip kube-proxy", "endpoint-a", 1)
    assert endpoint in hits_from_stories(stored(result.before, [OUTBOUND]))
    assert endpoint not in hits_from_stories(stored(result.stories, [OUTBOUND]))
    assert result.patch.splitlines()[-1] == (
        "+delete element ip kube-proxy service-ips { 172.16.0.10 . tcp . 80 : goto endpoint-a }"
    )


def test_adding_an_element_appends_the_nft_command() -> None:
    ev = nft_evidence(KUBE_PROXY_SCRIPT)
    result = whatif(
        ev, [OUTBOUND], [Edit(op="add_element", table="kube-proxy", set="cluster-ips", element="172.16.0.11")]
    )
    assert result.ok and result.patch.splitlines()[-1] == "+add element ip kube-proxy cluster-ips { 172.16.0.11 }"
