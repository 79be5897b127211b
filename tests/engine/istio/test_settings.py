"""CaptureSettings: Istio's defaults, the loose forms its flags and annotations use, errors as data."""

from __future__ import annotations

import ipaddress

import pytest

from meshviz.engine.istio import CaptureSettings, InterceptionMode, SettingsError, settings_from_init_args


def test_defaults_are_istio_iptables_defaults() -> None:
    s = CaptureSettings()
    assert s.interception_mode == InterceptionMode.REDIRECT
    assert (s.proxy_port, s.inbound_capture_port, s.inbound_tunnel_port) == (15001, 15006, 15008)
    assert (s.proxy_uids, s.proxy_gids) == (("1337",), ("1337",))
    assert (s.inbound_tproxy_mark, s.inbound_tproxy_route_table) == (1337, 133)
    assert s.inbound_ports_include == () and s.outbound_ip_ranges_include == ()
    assert s.owner_groups_include == "*"
    assert s.host_ipv4_loopback_cidr == ipaddress.IPv4Interface("127.0.0.1/32")
    assert s.cni_status_ports == (15020, 15021, 15090)
    assert not (s.enable_ipv6 or s.redirect_dns or s.capture_all_dns or s.drop_invalid or s.trace_logging)


def test_istio_init_defaults_match_a_default_injection() -> None:
    s = CaptureSettings.istio_init_defaults()
    assert s.inbound_ports_include == "*" and s.outbound_ip_ranges_include == "*"
    assert s.inbound_ports_exclude == (15090, 15021, 15020)


def test_loose_forms() -> None:
    s = CaptureSettings.from_values(
        proxy_uids="3,4",
        proxy_gids=[1, "2"],
        inbound_ports_include="*",
        inbound_ports_exclude="6000,7000,",  # trailing comma tolerated, like Istio's Split
        outbound_ip_ranges_include="10.0.0.0/8, 2001:db8::/32",
        owner_groups_include="java,202",
        interception_mode="tproxy",
        redirect_dns="true",
        dns_servers_v6="::127.0.0.53",
        inbound_tproxy_mark="0x539",
    )
    assert s.proxy_uids == ("3", "4") and s.proxy_gids == ("1", "2")
    assert s.inbound_ports_include == "*" and s.inbound_ports_exclude == (6000, 7000)
    assert [c.with_prefixlen for c in s.outbound_ip_ranges_include] == ["10.0.0.0/8", "2001:db8::/32"]
    assert s.owner_groups_include == ("java", "202")
    assert s.tproxy and s.redirect_dns
    assert s.dns_servers_v6 == ("::127.0.0.53",)  # kept as written, as Istio copies resolv.conf
    assert s.inbound_tproxy_mark == 1337


def test_empty_selections() -> None:
    s = CaptureSettings.from_values(
        CaptureSettings.istio_init_defaults(), inbound_ports_include="", outbound_ip_ranges_include=""
    )
    assert s.inbound_ports_include == () and s.outbound_ip_ranges_include == ()


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("inbound_ports_include", "80,abc", "not a port number"),
        ("outbound_ports_exclude", "70000", "out of range"),
        ("inbound_ports_exclude", "8000:8080", "port ranges"),
        ("outbound_ip_ranges_include", "10.0.0.0/33", "not an IP address or CIDR"),
        ("outbound_ip_ranges_exclude", "*", "'*' is not allowed"),
        ("interception_mode", "NONE", "REDIRECT or TPROXY"),
        ("host_ipv4_loopback_cidr", "10.0.0.1/8", "loopback"),
        ("host_ipv4_loopback_cidr", "127.0.0.1/4", "/8 and /32"),
        ("dns_servers_v4", "::1", "not an IPv4 address"),
        ("proxy_uids", "", "at least one"),
        ("redirect_dns", "maybe", "not a boolean"),
        ("no_such_knob", "1", "unknown setting"),
    ],
)
def test_malformed_values_are_reported_with_their_name(field: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        CaptureSettings.from_values(**{field: value})
    assert info.value.issue.name == field
    assert info.value.issue.value == value
    assert fragment in info.value.issue.message
    assert info.value.issue.to_dict()["message"] == info.value.issue.message


def test_too_many_owner_groups_are_refused_like_istio_does() -> None:
    with pytest.raises(SettingsError, match="more than 64"):
        CaptureSettings.from_values(owner_groups_include=",".join(str(i) for i in range(65)))


def test_direct_construction_is_validated() -> None:
    with pytest.raises(SettingsError):
        CaptureSettings(proxy_port=0)
    with pytest.raises(SettingsError):
        CaptureSettings(inbound_ports_exclude=("80",))  # type: ignore[arg-type]


def test_dict_round_trip() -> None:
    s = CaptureSettings.from_values(
        interception_mode="TPROXY", inbound_ports_include="*", outbound_ip_ranges_include="10.0.0.0/8", enable_ipv6=True
    )
    assert CaptureSettings.from_dict(s.to_dict()) == s


def test_flags_round_trip_through_the_init_args_reader() -> None:
    s = CaptureSettings.from_values(
        interception_mode="TPROXY",
        inbound_ports_include="80,443",
        outbound_ports_include="9000",
        outbound_ports_exclude="15020",
        outbound_ip_ranges_include="10.0.0.0/8",
        outbound_ip_ranges_exclude="10.1.0.0/16",
        reroute_virtual_interfaces="eth1",
        exclude_interfaces="eth2",
        proxy_uids="3,4",
        proxy_gids="1",
        redirect_dns=True,
        capture_all_dns=True,
        drop_invalid=True,
    )
    back = settings_from_init_args(["istio-iptables", *s.to_flags()])
    assert back.ok and back.settings == s
