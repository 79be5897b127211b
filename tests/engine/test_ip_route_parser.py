"""`parse_ip_routes`: `ip route show [table X|all]` output, `ip route add` commands, transcripts."""

from __future__ import annotations

import ipaddress

from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.iproute2 import table_id
from meshviz.engine.routing.model import RouteType

# iproute2 ends IPv4 route lines with a space; IPv6 ones (with `pref`) without.
TABLE_ALL = "".join(
    [
        "local default dev lo table 133 scope host \n",
        "default via 10.244.1.1 dev eth0 \n",
        "10.244.1.0/24 dev eth0 proto kernel scope link src 10.244.1.5 \n",
        "local 10.244.1.5 dev eth0 table local proto kernel scope host src 10.244.1.5 \n",
        "broadcast 10.244.1.255 dev eth0 table local proto kernel scope link src 10.244.1.5 \n",
        "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 \n",
        "local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 \n",
        "broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1 \n",
        "local default dev lo table 133 metric 1024 pref medium\n",
        "fd00:10:244:1::/64 dev eth0 proto kernel metric 256 pref medium\n",
        "default via fd00:10:244:1::1 dev eth0 metric 1024 pref medium\n",
        "local ::1 dev lo table local proto kernel metric 0 pref medium\n",
        "multicast ff00::/8 dev eth0 table local proto kernel metric 256 pref medium\n",
    ]
)


def n(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_table_all_output_types_tables_and_attributes() -> None:
    r = parse_ip_routes(TABLE_ALL)
    assert not r.errors and not r.warnings, (r.errors, r.warnings)
    first = r.routes[0]
    assert (first.type, first.dst, first.dev, first.table, first.scope) == (
        RouteType.LOCAL,
        n("0.0.0.0/0"),
        "lo",
        133,
        "host",
    )
    default = r.routes[1]
    assert (default.table, default.via, default.dev) == (254, ipaddress.ip_address("10.244.1.1"), "eth0")
    connected = r.routes[2]
    assert (connected.proto, connected.scope, connected.src) == ("kernel", "link", ipaddress.ip_address("10.244.1.5"))
    assert [x.type for x in r.routes].count(RouteType.BROADCAST) == 2
    assert r.routes[3].table == 255 and r.routes[3].table_name == "local"


def test_ipv6_default_in_table_all_output_is_ipv6() -> None:
    r = parse_ip_routes(TABLE_ALL)
    v6_local_default = r.routes[8]
    assert v6_local_default.dst == n("::/0") and v6_local_default.table == 133
    assert v6_local_default.metric == 1024
    assert r.routes[10].dst == n("::/0") and r.routes[10].via == ipaddress.ip_address("fd00:10:244:1::1")
    assert r.routes[12].type == RouteType.MULTICAST


def test_prompt_with_table_name_applies_to_following_routes() -> None:
    text = (
        "# ip route show\n"
        "default via 10.0.96.1 dev eth0 \n"
        "10.0.96.0/19 dev eth0  proto kernel  scope link  src 10.0.104.183 \n"
        "\n"
        "# ip route show table eni-1\n"
        "default via 10.0.96.1 dev eth1 \n"
        "10.0.96.1 dev eth1  scope link \n"
    )
    r = parse_ip_routes(text)
    assert not r.errors and not r.warnings
    assert [x.table for x in r.routes] == [254, 254, table_id("eni-1"), table_id("eni-1")]
    assert r.routes[2].table_name == "eni-1"
    assert r.table_names == (("eni-1", table_id("eni-1")),)
    assert r.routes[3].dst == n("10.0.96.1/32")


def test_numbered_table_prompt_and_local_table_prompt() -> None:
    text = "$ ip route show table 133\nlocal default dev lo scope host\n$ ip route list table local\nlocal 10.0.0.5 dev eth0 proto kernel scope host src 10.0.0.5\n"
    r = parse_ip_routes(text)
    assert [x.table for x in r.routes] == [133, 255]


def test_plain_ip_route_means_main() -> None:
    r = parse_ip_routes("$ ip route\ndefault via 10.0.0.1 dev eth0\n")
    assert r.routes[0].table == 254 and r.routes[0].table_name == "main"


def test_add_form_local_default_dev_lo_table_133_gets_scope_host() -> None:
    r = parse_ip_routes("ip route add local default dev lo table 133\n")
    assert not r.errors
    (route,) = r.routes
    assert (route.type, route.dst, route.dev, route.table, route.scope) == (
        RouteType.LOCAL,
        n("0.0.0.0/0"),
        "lo",
        133,
        "host",
    )


def test_add_form_scopes_follow_iproute2_defaults() -> None:
    text = (
        "sudo ip route add 10.1.0.0/16 dev eth0\n"
        "ip route add 10.2.0.0/16 via 10.0.0.1 dev eth0\n"
        "$ ip -6 route add local ::/0 dev lo table 133\n"
        "ip route add to broadcast 10.0.0.255 dev eth0 table local\n"
    )
    r = parse_ip_routes(text)
    assert not r.errors, r.errors
    assert [x.scope for x in r.routes] == ["link", None, None, "link"]
    assert r.routes[2].dst == n("::/0") and r.routes[2].table == 133
    assert r.routes[3].type == RouteType.BROADCAST and r.routes[3].table == 255


def test_family_option_makes_default_ipv6() -> None:
    r = parse_ip_routes("ip -f inet6 route add local default dev lo table 133")
    assert r.routes[0].dst == n("::/0")


def test_harmless_attributes_are_ignored_without_warning() -> None:
    text = (
        "default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100 mtu lock 1400 advmss 1360 onlink\n"
        "fe80::/64 dev eth0 proto kernel metric 256 expires 299sec pref medium\n"
        "10.9.0.0/16 via 10.0.0.1 dev eth0 initcwnd 10 congctl lock cubic rto_min 5ms\n"
    )
    r = parse_ip_routes(text)
    assert not r.errors and not r.warnings, (r.errors, r.warnings)
    assert r.routes[0].metric == 100 and r.routes[0].proto == "dhcp"


def test_linkdown_is_kept_with_a_warning() -> None:
    r = parse_ip_routes("10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5 linkdown\n")
    assert len(r.routes) == 1 and len(r.warnings) == 1


def test_dead_route_is_dropped_with_a_warning() -> None:
    r = parse_ip_routes("10.5.0.0/16 via 10.0.0.1 dev eth0 dead\n")
    assert r.routes == () and "dead" in r.warnings[0].message


def test_multipath_route_keeps_its_first_nexthop_with_a_warning() -> None:
    text = (
        "default proto static metric 1024 \n"
        "\tnexthop via 10.0.0.1 dev eth0 weight 1 \n"
        "\tnexthop via 10.0.1.1 dev eth1 weight 1 \n"
    )
    r = parse_ip_routes(text)
    assert not r.errors
    (route,) = r.routes
    assert (route.via, route.dev) == (ipaddress.ip_address("10.0.0.1"), "eth0")
    assert any("multipath" in w.message for w in r.warnings)


def test_unknown_attribute_is_an_error_with_its_column() -> None:
    line = "10.0.0.0/8 via 10.0.0.1 dev eth0 wibble 3"
    (err,) = parse_ip_routes(line).errors
    assert err.column == line.index("wibble") + 1 and "wibble" in err.message


def test_bad_gateway_is_an_error_pointing_at_it() -> None:
    line = "default via 10.0.0.x dev eth0"
    (err,) = parse_ip_routes(line).errors
    assert err.column == line.index("10.0.0.x") + 1


def test_host_bits_in_add_form_are_an_error() -> None:
    (err,) = parse_ip_routes("ip route add 10.1.2.3/8 dev eth0").errors
    assert "host bits" in err.message


def test_source_specific_and_tos_routes_are_reported_unsupported() -> None:
    r = parse_ip_routes(
        "2001:db8::/32 from 2001:db8:1::/48 dev eth0 metric 1024 pref medium\n10.0.0.0/8 tos 0x10 dev eth0\n"
    )
    assert len(r.errors) == 2


def test_dev_filter_of_the_listing_fills_in_the_device() -> None:
    r = parse_ip_routes(
        "$ ip route show dev eth0\ndefault via 10.80.0.1 \n10.80.0.0/24 proto kernel scope link src 10.80.0.10 \n"
    )
    assert [x.dev for x in r.routes] == ["eth0", "eth0"]


def test_route_get_answers_are_skipped_with_one_warning() -> None:
    text = "$ ip route get 1.2.3.4\n1.2.3.4 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0 \n    cache \n$ ip route\ndefault via 10.0.0.1 dev eth0\n"
    r = parse_ip_routes(text)
    assert not r.errors and len(r.routes) == 1
    assert len(r.warnings) == 1 and "route get" in r.warnings[0].message


def test_rule_sections_are_skipped() -> None:
    r = parse_ip_routes("# ip rule list\n0:\tfrom all lookup local\n# ip route\ndefault via 10.0.0.1 dev eth0\n")
    assert not r.errors and not r.warnings and len(r.routes) == 1


def test_identical_routes_from_overlapping_listings_appear_once() -> None:
    line = "fd00::/64 dev eth0 proto kernel metric 256 pref medium\n"
    r = parse_ip_routes("$ ip route show table all\n" + line + "$ ip -6 route show table all\n" + line)
    assert len(r.routes) == 1


def test_ipv6_unreachable_with_error_attribute() -> None:
    r = parse_ip_routes("unreachable default dev lo proto kernel metric 4294967295 error -101 pref medium\n")
    assert not r.errors
    assert r.routes[0].type == RouteType.UNREACHABLE and r.routes[0].dst == n("::/0")


def test_error_route_types_without_device() -> None:
    r = parse_ip_routes(
        "unreachable 10.91.0.0/16 \nprohibit 10.92.0.0/16 \nblackhole 10.93.0.0/16 \nthrow 10.94.0.0/16 table 133 \n"
    )
    assert not r.errors
    assert [x.type for x in r.routes] == [
        RouteType.UNREACHABLE,
        RouteType.PROHIBIT,
        RouteType.BLACKHOLE,
        RouteType.THROW,
    ]
    assert r.routes[3].table == 133


def test_route_change_commands_are_errors() -> None:
    r = parse_ip_routes("ip route del default\nip route flush table 133\n")
    assert len(r.errors) == 2 and r.routes == ()


def test_routes_keep_their_source_line() -> None:
    r = parse_ip_routes("$ ip route\n\ndefault via 10.0.0.1 dev eth0 \n", source="pod/ip-route")
    ref = r.routes[0].ref
    assert ref is not None and (ref.source, ref.line, ref.text) == ("pod/ip-route", 3, "default via 10.0.0.1 dev eth0")
