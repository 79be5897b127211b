"""TPROXY + original_src without the policy route: the fix is exactly the two ip commands, verified."""

from meshviz.engine.fix import fix

from .helpers import CLIENT, IP_ROUTE_NONE, IP_RULE_NONE, PORT, tproxy_evidence


def test_fix_adds_ip_rule_and_route_and_reaches_the_client_ip() -> None:
    r = fix(tproxy_evidence(ip_rule=IP_RULE_NONE, ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    assert r.before["failure"] == "REPLY_ESCAPES_VIA_eth0"
    assert r.works
    assert r.after is not None and r.after["app_peer_ip"] == "10.1.1.1" and r.after["failure"] is None
    assert [x.key for x in r.repairs] == ["ip-rule-fwmark", "ip-route-local-default"]
    out = r.to_dict()
    assert out["patched"]["ip_rule"] == ["rule add fwmark 1337 lookup 133"]
    assert out["patched"]["ip_route"] == ["route add local default dev lo table 133"]
    assert "*mangle" in out["patched"]["iptables_save"]


def test_a_missing_route_alone_is_diagnosed_and_fixed_alone() -> None:
    r = fix(tproxy_evidence(ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    assert r.works
    assert [x.key for x in r.repairs] == ["ip-route-local-default"]
