"""Adding Istio's policy route to the 503-UF example makes the application see the client, like the working pod."""

from __future__ import annotations

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import retrace, whatif

from .helpers import NO_POLICY_ROUTE, TPROXY_OK, connections, evidence

EDITS = [
    Edit(op="append_text", kind="ip_rule", text="ip rule add fwmark 1337 lookup 133"),
    Edit(op="append_text", kind="ip_route", text="ip route add local default dev lo table 133"),
]


def test_verdict_turns_to_the_client_ip() -> None:
    ev = evidence(NO_POLICY_ROUTE)
    conns = connections(ev)
    result = whatif(ev, conns, EDITS)
    assert result.ok, result.errors
    inbound = next(d for d in result.diff if d.connection["direction"] == "inbound")
    client_ip = inbound.connection["client"].rsplit(":", 1)[0]
    # before: the example's own verdict - the reply escapes, the connection fails
    assert inbound.before_verdict["failure"] is not None
    # after: no failure, the application is reached and sees the client's address
    assert inbound.changed
    assert inbound.after_verdict["failure"] is None
    assert inbound.after_verdict["app_reached"] is True
    assert inbound.after_verdict["app_peer_ip"] == client_ip
    # ... exactly what the pod that has the policy route gets for the same connection
    good = retrace(evidence(TPROXY_OK), [inbound.connection])[0]
    assert inbound.after_verdict == good.verdict.to_dict()
    # the outbound connection does not depend on the policy route
    outbound = next(d for d in result.diff if d.connection["direction"] == "outbound")
    assert not outbound.changed


def test_patch_shows_only_the_added_lines() -> None:
    ev = evidence(NO_POLICY_ROUTE)
    result = whatif(ev, connections(ev), EDITS)
    assert "--- a/ip-rule\n+++ b/ip-rule\n" in result.patch
    assert "--- a/ip-route\n+++ b/ip-route\n" in result.patch
    added = [ln for ln in result.patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    removed = [ln for ln in result.patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    assert added == ["+ip rule add fwmark 1337 lookup 133", "+ip route add local default dev lo table 133"]
    assert removed == []
    assert result.evidence.iptables == ev.iptables and result.evidence.envoy == ev.envoy
