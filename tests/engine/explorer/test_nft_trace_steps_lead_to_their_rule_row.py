"""A connection's stored story on an nft pod: every nft rule step names a rule of the rule table (same table, chain
and index), and the steps around a rule are found for the rule's page."""

from __future__ import annotations

from meshviz.engine.explorer.nft_view import nft_rule_rows
from meshviz.engine.explorer.rule_table import hits_from_stories, steps_for_rule
from meshviz.engine.explorer.whatif import retrace, stored
from meshviz.engine.nftables.parser import parse_nftables

from .nft_support import INBOUND, TPROXY_LIST, nft_evidence


def test_every_nft_rule_step_is_a_row_and_its_steps_are_found() -> None:
    ev = nft_evidence(TPROXY_LIST)
    stories = stored(retrace(ev, [INBOUND]), [INBOUND])
    rows = {(r.table, r.chain, r.index): r for r in nft_rule_rows(parse_nftables(TPROXY_LIST).ruleset)}
    hits = hits_from_stories(stories)
    assert hits and set(hits) <= set(rows)
    tproxy = ("inet istio-proxy-mangle", "istio-tproxy", 1)
    assert hits[tproxy] == [1]
    around = steps_for_rule(stories, *tproxy)[0]
    step = around["steps"][around["at"]]
    assert (step["table"], step["chain"], step["index"]) == tproxy
    assert step["rule"] == rows[tproxy].original and step["line"] == rows[tproxy].line
