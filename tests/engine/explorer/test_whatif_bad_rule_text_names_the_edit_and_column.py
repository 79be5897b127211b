"""A bad rule in an edit is a ParseError naming the edit (`edit N`), the column in the rule and the rule text."""

from __future__ import annotations

import pytest

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits, whatif

from .helpers import TPROXY_OK, connections, evidence

GOOD = Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=1, rule="-p tcp --dport 22 -j RETURN")


@pytest.mark.parametrize(
    ("rule", "bad", "message"),
    [
        ("-p tcp --dportx 22 -j RETURN", "--dportx", "--dportx"),
        ("-A ISTIO_INBOUND -p tcp --dport 22 -j NOSUCHCHAIN", "NOSUCHCHAIN", "NOSUCHCHAIN"),
        ("-p tcp -m owner --uid-owner 1337 -j RETURN", "owner", "owner"),
        ("-A OTHER -p tcp -j RETURN", "OTHER", "chain OTHER"),
    ],
)
def test_error_points_into_the_rule(rule: str, bad: str, message: str) -> None:
    ev = evidence(TPROXY_OK)
    edits = [GOOD, Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=2, rule=rule)]
    result = apply_edits(ev, edits)
    assert len(result.errors) == 1
    (err,) = result.errors
    assert err.source == "edit 2"
    assert err.text == rule
    assert err.line == 1
    assert err.column == rule.index(bad) + 1, (err.column, err.message)
    assert message in err.message
    # the good edit still applies; the bad one changed nothing
    assert result.evidence.iptables.count("--dport 22 -j RETURN") == 1


def test_whatif_does_not_retrace_with_edit_errors() -> None:
    ev = evidence(TPROXY_OK)
    bad = Edit(op="replace", table="mangle", chain="ISTIO_TPROXY", index=1, rule="-p tcp -j TPROXY --on-port")
    result = whatif(ev, connections(ev), [bad])
    assert not result.ok and result.errors[0].source == "edit 1"
    assert result.stories == () and result.diff == ()
    assert result.to_dict()["errors"][0]["source"] == "edit 1"


def test_target_in_the_wrong_hook_is_refused() -> None:
    ev = evidence(TPROXY_OK)
    edit = Edit(op="insert", table="mangle", chain="OUTPUT", index=1, rule="-p tcp -j TPROXY --on-port 15006")
    (err,) = apply_edits(ev, [edit]).errors
    assert err.source == "edit 1" and "TPROXY" in err.message
