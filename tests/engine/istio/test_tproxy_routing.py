"""TPROXY needs policy routing: `ip rule`/`ip route` commands, per family, only when inbound is captured."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import Family
from meshviz.engine.istio import CaptureSettings, generate
from meshviz.engine.routing.model import RouteType


def test_tproxy_adds_the_fwmark_rule_and_the_local_route() -> None:
    capture = generate(CaptureSettings.from_values(interception_mode="TPROXY", inbound_ports_include="*"))
    assert capture.ip_rule == ("rule add fwmark 1337 lookup 133",)
    assert capture.ip_route == ("route add local default dev lo table 133",)
    assert capture.ip_addr == ()
    assert capture.sysctls == ()
    (rule,) = capture.policy_rules
    assert (rule.fwmark, rule.table, rule.family) == (1337, 133, Family.IPV4)
    (route,) = capture.routes
    assert (route.table, route.type, route.dev, route.dst) == (
        133,
        RouteType.LOCAL,
        "lo",
        ipaddress.ip_network("0.0.0.0/0"),
    )


def test_ipv6_gets_the_same_and_the_passthrough_address_on_lo() -> None:
    capture = generate(
        CaptureSettings.from_values(
            interception_mode="TPROXY",
            inbound_ports_include="8080",
            enable_ipv6=True,
            inbound_tproxy_mark=7,
            inbound_tproxy_route_table=70,
        )
    )
    assert capture.ip_rule == ("rule add fwmark 7 lookup 70", "-6 rule add fwmark 7 lookup 70")
    assert capture.ip_route == ("route add local default dev lo table 70", "-6 route add local default dev lo table 70")
    assert capture.ip_addr == ("-6 addr add ::6/128 dev lo",)
    assert capture.ip_commands()[0] == "ip -6 addr add ::6/128 dev lo"
    assert {r.family for r in capture.policy_rules} == {Family.IPV4, Family.IPV6}
    assert {str(r.dst) for r in capture.routes} == {"0.0.0.0/0", "::/0"}


def test_no_routing_for_redirect_or_without_inbound_capture() -> None:
    assert generate(CaptureSettings.istio_init_defaults()).ip_rule == ()
    tproxy_nothing_inbound = generate(CaptureSettings.from_values(interception_mode="TPROXY"))
    assert tproxy_nothing_inbound.ip_rule == () and tproxy_nothing_inbound.ip_route == ()


def test_the_mark_and_table_reach_the_rules() -> None:
    capture = generate(
        CaptureSettings.from_values(interception_mode="TPROXY", inbound_ports_include="*", inbound_tproxy_mark=7)
    )
    text = capture.restore_text[Family.IPV4]
    assert "-A ISTIO_DIVERT -j MARK --set-mark 7" in text
    assert "--tproxy-mark 7/0xffffffff --on-port 15006" in text
    assert "-I ISTIO_INBOUND 1 -p tcp -m mark --mark 7 -j RETURN" in text
