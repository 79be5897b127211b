"""TPROXY + original_src without the policy route: the fix is exactly the two ip commands, verified."""

from meshviz.engine.fix.plans import fix

from .helpers import CLIENT, IP_ROUTE_NONE, IP_RULE_NONE, PORT, tproxy_evidence


def test_fix_adds_ip_rule_and_route_and_reaches_the_client_ip() -> None:
    r = fix(tproxy_evidence(ip_rule=IP_RULE_NONE, ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    assert r.before["failure"] == "REPLY_ESCAPES_VIA_eth0"
    assert r.works
    assert r.after is not None and r.after["app_peer_ip"] == "10.1.1.1" and r.after["failure"] is None
    assert [x.key for x in r.repairs] == ["ip-rule-fwmark", "ip-route-local-default"]
    out = r.to_dict()
    assert [a.content for x in r.repairs for a in x.artifacts] == [
        "ip rule add fwmark 1337 lookup 133",
        "ip route add local default dev lo table 133",
    ]
    # `patched` is the whole pod: the routes it already had (its CNI's default route) and the new ones.
    assert out["patched"]["ip_rule"] == ["rule add pref 32765 from all fwmark 0x539 lookup 133"]
    assert out["patched"]["ip_route"] == [
        "route replace default via 172.16.188.1 dev eth0",
        "route replace local default dev lo table 133 scope host",
    ]
    assert "*mangle" in out["patched"]["iptables_save"]


def test_patched_keeps_the_policy_rule_the_pod_already_had() -> None:
    # The pod has its fwmark rule and lacks only the route: `patched` must still carry the rule, or a pod built
    # from it alone would lack it and the fix would not work there.
    r = fix(tproxy_evidence(ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    patched = r.to_dict()["patched"]
    assert "rule add pref 32765 from all fwmark 0x539 lookup 133" in patched["ip_rule"]
    assert "route replace local default dev lo table 133 scope host" in patched["ip_route"]


def test_a_missing_route_alone_is_diagnosed_and_fixed_alone() -> None:
    r = fix(tproxy_evidence(ip_route=IP_ROUTE_NONE), client=CLIENT, port=PORT)
    assert r.works
    assert [x.key for x in r.repairs] == ["ip-route-local-default"]
