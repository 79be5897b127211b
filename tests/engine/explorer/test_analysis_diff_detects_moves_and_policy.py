"""diff_rulesets aligns the chains: a moved rule is reported as moved, not as removed plus added."""

from __future__ import annotations

from meshviz.engine.explorer.diff import diff_rulesets
from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits
from meshviz.engine.netfilter.parser import parse_iptables

from .helpers import TPROXY_OK, evidence


def _v4(text: str):  # type: ignore[no-untyped-def]
    r = parse_iptables(text)
    assert not r.errors
    return r.rulesets[0]


def test_move_is_a_move() -> None:
    ev = evidence(TPROXY_OK)
    moved = apply_edits(ev, [Edit(op="move", table="mangle", chain="ISTIO_INBOUND", index=8, to_index=1)])
    assert moved.ok
    d = diff_rulesets(_v4(ev.iptables), _v4(moved.evidence.iptables))
    (chain,) = d.chains
    assert (chain.table, chain.chain, chain.status) == ("mangle", "ISTIO_INBOUND", "changed")
    assert [(m.text, m.index, m.to_index) for m in chain.moved] == [("-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY", 8, 1)]
    assert chain.added == () and chain.removed == ()


def test_added_removed_and_policy_changes() -> None:
    ev = evidence(TPROXY_OK)
    edited = apply_edits(
        ev,
        [
            Edit(op="delete", table="mangle", chain="ISTIO_INBOUND", index=4),
            Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=2, rule="-p tcp --dport 22 -j RETURN"),
        ],
    )
    assert edited.ok, edited.errors
    text = edited.evidence.iptables.replace("* nat\n", "* nat\n-P OUTPUT ACCEPT\n", 1)
    a, b = _v4(ev.iptables), _v4(text)
    d = diff_rulesets(a, b)
    (chain,) = [c for c in d.chains if c.chain == "ISTIO_INBOUND" and c.table == "mangle"]
    assert [(r.text, r.index) for r in chain.added] == [("-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN", 2)]
    assert [(r.text, r.index) for r in chain.removed] == [("-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN", 4)]
    dropped = text.replace("-A ISTIO_DIVERT -j ACCEPT\n", "").replace("-N ISTIO_DIVERT\n", "-N ISTIO_DIVERT\n", 1)
    d2 = diff_rulesets(a, _v4(dropped))
    divert = d2.chain("mangle", "ISTIO_DIVERT")
    assert divert is not None and [r.index for r in divert.removed] == [2]
