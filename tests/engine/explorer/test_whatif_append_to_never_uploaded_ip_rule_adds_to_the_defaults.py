"""What-if "append" on evidence that was never uploaded adds to what the engine assumed (the kernel's default ip
rules), instead of replacing it: appending the one policy rule TPROXY needs fixes the inbound connection and keeps
the outbound one working."""

from __future__ import annotations

from dataclasses import replace

from meshviz.analyses import examples
from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits, default_connections, retrace


def test_appending_a_listed_policy_rule_keeps_the_default_rules() -> None:
    ex = examples.get("tproxy-missing-policy-route-503-uf")
    assert ex is not None
    ev = replace(ex.engine_evidence(), ip_rule=None)
    conns = default_connections(ev)
    before = retrace(ev, conns)
    assert before[0].verdict.failure, "the inbound connection fails without the policy route"

    result = apply_edits(
        ev,
        [
            Edit(op="append_text", kind="ip_rule", text="32765:\tfrom all fwmark 0x539 lookup 133"),
            Edit(op="append_text", kind="ip_route", text="local default dev lo table 133"),
        ],
    )
    assert not result.errors
    text = result.evidence.ip_rule or ""
    assert "lookup local" in text and "lookup main" in text and "fwmark 0x539 lookup 133" in text
    assert "default rules it assumed" in result.changes[0]
    after = retrace(result.evidence, conns)
    inbound = next(s for s, c in zip(after, conns, strict=True) if c["direction"] == "inbound")
    outbound = next(s for s, c in zip(after, conns, strict=True) if c["direction"] == "outbound")
    assert not inbound.verdict.failure
    assert outbound.verdict.destination_reached, "the outbound connection still works"
