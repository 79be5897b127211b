"""`fib_lookup`: the policy-rule walk and the table lookups, as the kernel does them."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import Family
from meshviz.engine.routing.fib import fib_lookup
from meshviz.engine.routing.flow import Flow
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import RouteType, RoutingConfig

A = ipaddress.ip_address

MAIN = """\
default via 10.80.0.1 dev eth0
10.80.0.0/24 dev eth0 proto kernel scope link src 10.80.0.10
10.81.0.0/24 dev eth1 proto kernel scope link src 10.81.0.10
local 10.80.0.10 dev eth0 table local proto kernel scope host src 10.80.0.10
local 10.81.0.10 dev eth1 table local proto kernel scope host src 10.81.0.10
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
"""
DEFAULT_RULES = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"


def config(rules: str = "", routes: str = "") -> RoutingConfig:
    rr = parse_ip_rules(DEFAULT_RULES + rules)
    rt = parse_ip_routes(MAIN + routes)
    assert not rr.errors and not rt.errors, (rr.errors, rt.errors)
    return RoutingConfig(rules=rr.rules, routes=rt.routes)


def out(cfg: RoutingConfig, dst: str, **kw: object) -> tuple[bool, str | None, int | None, str | None]:
    d = fib_lookup(cfg, Flow(dst=A(dst), **kw))  # type: ignore[arg-type]
    return d.ok, d.dev, d.table, d.error


ISTIO = config("32765:\tfrom all fwmark 0x539 lookup 133\n", "local default dev lo table 133 scope host\n")


def test_fwmark_rule_selects_table_133_for_mark_1337() -> None:
    d = fib_lookup(ISTIO, Flow(dst=A("1.2.3.4"), mark=1337))
    assert d.ok and d.type == RouteType.LOCAL and d.table == 133 and d.dev == "lo"
    assert d.rule is not None and d.rule.priority == 32765


def test_unmarked_traffic_skips_table_133() -> None:
    assert out(ISTIO, "1.2.3.4") == (True, "eth0", 254, None)


def test_fwmark_rule_with_mask_selects_table_133() -> None:
    cfg = config("100: from all fwmark 0x100/0xf00 lookup 133\n", "local default dev lo table 133\n")
    assert out(cfg, "1.2.3.4", mark=0x1100)[2] == 133  # (0x1100 ^ 0x100) & 0xf00 == 0
    assert out(cfg, "1.2.3.4", mark=0x1200)[2] == 254


def test_rules_are_walked_in_priority_order_not_input_order() -> None:
    cfg = config(
        "200: from all lookup 20\n100: from all lookup 10\n", "default dev eth1 table 10\ndefault dev eth0 table 20\n"
    )
    assert out(cfg, "1.2.3.4")[1:3] == ("eth1", 10)


def test_not_inverts_the_whole_rule() -> None:
    cfg = config("1025:\tnot from all to 10.0.0.0/16 lookup 7\n", "default dev eth1 table 7\n")
    assert out(cfg, "10.9.9.9")[2] == 7
    assert out(cfg, "10.0.1.1")[2] == 254


def test_goto_jumps_over_rules_and_unresolved_goto_is_skipped() -> None:
    rules = "600: from all to 10.73.0.0/16 goto 700\n610: from all to 10.73.0.0/16 blackhole\n700: from all to 10.73.0.0/16 lookup 140\n"
    cfg = config(rules, "10.73.0.0/16 dev eth1 table 140\n")
    assert out(cfg, "10.73.0.1")[1:3] == ("eth1", 140)
    dangling = config("600: from all goto 650\n610: from all blackhole\n")
    assert out(dangling, "1.2.3.4")[3] == "BLACKHOLE"


def test_goto_target_that_does_not_match_continues_after_it() -> None:
    rules = "600: from all goto 700\n650: from all lookup 10\n700: from all fwmark 0x1 lookup 20\n"
    cfg = config(rules, "default dev eth1 table 10\ndefault dev eth1 table 20\n")
    assert out(cfg, "1.2.3.4")[2] == 254


def test_nop_rule_continues() -> None:
    cfg = config("10: from all nop\n")
    assert out(cfg, "1.2.3.4")[2] == 254


def test_rule_actions_give_the_kernels_errors() -> None:
    cfg = config(
        "101: from all to 10.77.0.0/16 blackhole\n102: from all to 10.78.0.0/16 unreachable\n103: from all to 10.79.0.0/16 prohibit\n"
    )
    assert out(cfg, "10.77.0.1")[3] == "BLACKHOLE"
    assert out(cfg, "10.78.0.1")[3] == "ENETUNREACH"
    assert out(cfg, "10.79.0.1")[3] == "EACCES"
    d = fib_lookup(cfg, Flow(dst=A("10.77.0.1")))
    assert d.errno == "EINVAL"


def test_error_routes_give_the_kernels_errors() -> None:
    cfg = config(routes="unreachable 10.91.0.0/16\nprohibit 10.92.0.0/16\nblackhole 10.93.0.0/16\n")
    assert out(cfg, "10.91.0.1")[3] == "EHOSTUNREACH"
    assert out(cfg, "10.92.0.1")[3] == "EACCES"
    assert out(cfg, "10.93.0.1")[3] == "BLACKHOLE"


def test_throw_route_continues_with_the_next_rule() -> None:
    cfg = config("100: from all lookup 133\n", "local default dev lo table 133\nthrow 10.94.0.0/16 table 133\n")
    assert out(cfg, "10.94.0.1")[2] == 254
    assert out(cfg, "10.95.0.1")[2] == 133


def test_missing_or_empty_table_continues() -> None:
    cfg = config("100: from all lookup 999\n")
    d = fib_lookup(cfg, Flow(dst=A("1.2.3.4")))
    assert d.table == 254
    assert any("table 999" in line and "empty" in line for line in d.explanation)


def test_no_rule_gives_a_route_is_enetunreach() -> None:
    cfg = RoutingConfig(rules=parse_ip_rules(DEFAULT_RULES).rules, routes=parse_ip_routes("10.0.0.0/8 dev eth0").routes)
    assert out(cfg, "1.2.3.4")[3] == "ENETUNREACH"


def test_suppress_prefixlength_0_ignores_default_routes_only() -> None:
    cfg = config(
        "800: from all lookup main suppress_prefixlength 0\n801: from all lookup 141\n", "default dev eth1 table 141\n"
    )
    assert out(cfg, "1.2.3.4")[1:3] == ("eth1", 141)
    assert out(cfg, "10.80.0.20")[1:3] == ("eth0", 254)


def test_longest_prefix_wins_then_lowest_metric() -> None:
    routes = "10.60.0.0/16 via 10.80.0.1 dev eth0 metric 100\n10.60.0.0/16 via 10.81.0.1 dev eth1 metric 50\n10.60.5.0/24 via 10.80.0.1 dev eth0 metric 200\n"
    cfg = config(routes=routes)
    assert out(cfg, "10.60.1.1")[1] == "eth1"
    assert out(cfg, "10.60.5.1")[1] == "eth0"


def test_iif_lo_rules_match_output_lookups_only() -> None:
    cfg = config("510: from all iif lo lookup 139\n", "default dev eth1 table 139\n")
    assert out(cfg, "1.2.3.4")[2] == 139
    d = fib_lookup(cfg, Flow(dst=A("1.2.3.4"), src=A("10.80.0.20"), iif="eth0"))
    assert d.table == 254


def test_iif_rules_match_input_lookups_on_that_device() -> None:
    cfg = config("500: from all iif eth0 lookup 138\n", "default dev eth1 table 138\n")
    assert fib_lookup(cfg, Flow(dst=A("1.2.3.4"), src=A("10.80.0.20"), iif="eth0")).table == 138
    assert out(cfg, "1.2.3.4")[2] == 254


def test_uidrange_matches_socket_owner_and_input_lookups_count_as_uid_0() -> None:
    cfg = config(
        "100: from all uidrange 1000-1999 lookup 135\n105: from all uidrange 0-0 lookup 144\n",
        "default dev eth1 table 135\ndefault dev eth1 table 144\n",
    )
    assert out(cfg, "1.2.3.4", uid=1500)[2] == 135
    assert out(cfg, "1.2.3.4", uid=2000)[2] == 254
    assert out(cfg, "1.2.3.4")[2] == 144  # no socket: uid 0
    assert fib_lookup(cfg, Flow(dst=A("1.2.3.4"), src=A("10.80.0.20"), iif="eth0", uid=1500)).table == 144


def test_from_rule_needs_the_source() -> None:
    cfg = config("300: from 10.81.0.10 lookup 136\n", "default dev eth1 table 136\n")
    assert out(cfg, "1.2.3.4", src=A("10.81.0.10"))[2] == 136
    assert out(cfg, "1.2.3.4")[2] == 254  # no source yet: 0.0.0.0 is not in 10.81.0.10/32


def test_oif_rule_and_route_device_filter() -> None:
    cfg = config("950: from all oif eth1 lookup 143\n", "default via 10.81.0.1 dev eth1 table 143\n")
    assert out(cfg, "1.2.3.4", oif="eth1")[1:3] == ("eth1", 143)
    d = fib_lookup(cfg, Flow(dst=A("1.2.3.4"), oif="eth2"))
    assert not d.ok and d.error == "ENETUNREACH"  # main's default is on eth0, skipped for oif eth2


def test_ipproto_and_port_selectors() -> None:
    cfg = config("900: from all ipproto udp dport 5353 lookup 142\n", "default dev eth1 table 142\n")
    assert out(cfg, "1.2.3.4", protocol="udp", dport=5353)[2] == 142
    assert out(cfg, "1.2.3.4", protocol="tcp", dport=5353)[2] == 254
    assert out(cfg, "1.2.3.4", protocol="udp", dport=53)[2] == 254


def test_config_without_rules_uses_the_default_rules() -> None:
    cfg = RoutingConfig(routes=parse_ip_routes(MAIN).routes)
    assert out(cfg, "10.80.0.10")[2] == 255
    assert out(cfg, "1.2.3.4")[2] == 254


def test_ipv6_lookup_uses_ipv6_rules_and_routes() -> None:
    rules = parse_ip_rules(
        "$ ip -6 rule\n0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x539 lookup 133\n32766:\tfrom all lookup main\n"
    )
    routes = parse_ip_routes(
        "$ ip -6 route show table all\nlocal default dev lo table 133 metric 1024 pref medium\nfd00::/64 dev eth0 proto kernel metric 256 pref medium\n"
    )
    cfg = RoutingConfig(rules=rules.rules, routes=routes.routes)
    assert fib_lookup(cfg, Flow(dst=A("fd00::5"))).dev == "eth0"
    d = fib_lookup(cfg, Flow(dst=A("2001:db8::1"), mark=1337))
    assert d.type == RouteType.LOCAL and d.table == 133
    assert fib_lookup(cfg, Flow(dst=A("2001:db8::1")), Family.IPV6).error == "ENETUNREACH"


def test_explanation_lists_each_rule_consulted_in_order() -> None:
    d = fib_lookup(ISTIO, Flow(dst=A("1.2.3.4"), mark=1337))
    assert d.explanation[0].startswith("rule `0: from all lookup local`: matches; table local")
    assert "fwmark 0x539 lookup 133" in d.explanation[1] and "local default dev lo table 133" in d.explanation[1]
    d2 = fib_lookup(ISTIO, Flow(dst=A("1.2.3.4")))
    assert "mark 0x0 does not match 0x539" in d2.explanation[1]
