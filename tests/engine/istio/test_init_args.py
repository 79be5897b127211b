"""Reading istio-init's command line the way istio-iptables' flag parser does."""

from __future__ import annotations

import pytest

from meshviz.engine.istio import CaptureSettings, settings_from_init_args

DEFAULT_INJECTION = [
    "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
    "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info",
]  # fmt: skip


def test_the_default_injection() -> None:
    r = settings_from_init_args(DEFAULT_INJECTION)
    assert r.ok and r.applies and r.flavour == "capture"
    assert r.settings == CaptureSettings.istio_init_defaults()
    assert any("logging option" in n for n in r.notes)
    assert any("gid not given" in n for n in r.notes)


def test_a_shell_quoted_string_is_accepted() -> None:
    line = "istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x \"\" -b '*' -d 15090,15021,15020"
    assert settings_from_init_args(line).settings == CaptureSettings.istio_init_defaults()


def test_pilot_agent_subcommand_and_long_forms() -> None:
    r = settings_from_init_args(
        [
            "/usr/local/bin/pilot-agent", "istio-iptables",
            "--envoy-port=16001", "--inbound-capture-port", "16006", "--inbound-tunnel-port=16008",
            "--proxy-uid=3,4", "--proxy-gid", "1,2", "--istio-inbound-interception-mode=TPROXY",
            "--istio-inbound-ports=80,443", "--istio-local-exclude-ports", "6000,7000,",
            "--istio-service-cidr=10.0.0.0/8", "--istio-service-exclude-cidr=10.1.0.0/16",
            "--istio-outbound-ports=9000", "--istio-local-outbound-ports-exclude=15020",
            "--kube-virt-interfaces=eth1", "--istio-exclude-interfaces=eth2",
            "--istio-inbound-tproxy-mark=7", "--istio-inbound-tproxy-route-table=70",
            "--redirect-dns", "--capture-all-dns", "--drop-invalid=true", "--iptables-trace-logging",
        ]
    )  # fmt: skip
    s = r.settings
    assert r.ok, r.errors
    assert (s.proxy_port, s.inbound_capture_port, s.inbound_tunnel_port) == (16001, 16006, 16008)
    assert (s.proxy_uids, s.proxy_gids) == (("3", "4"), ("1", "2"))
    assert s.tproxy and s.inbound_ports_include == (80, 443) and s.inbound_ports_exclude == (6000, 7000)
    assert [c.with_prefixlen for c in s.outbound_ip_ranges_include] == ["10.0.0.0/8"]
    assert s.outbound_ports_include == (9000,) and s.outbound_ports_exclude == (15020,)
    assert s.reroute_virtual_interfaces == ("eth1",) and s.exclude_interfaces == ("eth2",)
    assert (s.inbound_tproxy_mark, s.inbound_tproxy_route_table) == (7, 70)
    assert s.redirect_dns and s.capture_all_dns and s.drop_invalid and s.trace_logging


def test_short_flag_spellings() -> None:
    r = settings_from_init_args(
        ["-p16001", "-z=16006", "-e", "16008", "-k", "eth1,eth2", "-q", "80", "-o", "81", "-c", "eth3"]
    )
    s = r.settings
    assert (s.proxy_port, s.inbound_capture_port, s.inbound_tunnel_port) == (16001, 16006, 16008)
    assert s.reroute_virtual_interfaces == ("eth1", "eth2") and s.exclude_interfaces == ("eth3",)
    assert s.outbound_ports_include == (80,) and s.outbound_ports_exclude == (81,)


def test_environment_variables_and_their_precedence() -> None:
    env = {
        "INBOUND_CAPTURE_PORT": "16006",
        "ISTIO_INBOUND_PORTS": "*",
        "ISTIO_META_DNS_CAPTURE": "true",
        "INVALID_DROP": "true",
        "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,ftp",
        "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8",
        "PROXY_UID": "5",
    }
    r = settings_from_init_args(["-z", "17006"], env)
    s = r.settings
    assert s.inbound_capture_port == 17006  # the flag wins
    assert s.inbound_ports_include == "*" and s.redirect_dns and s.drop_invalid
    assert s.owner_groups_exclude == ("888", "ftp")
    assert s.host_ipv4_loopback_cidr.with_prefixlen == "127.0.0.1/8"
    assert s.proxy_uids == ("5",) and s.proxy_gids == ("5",)


def test_istio_iptables_fallbacks() -> None:
    r = settings_from_init_args(["-m", "SOMETHING", "-i", "10.0.0.0/8,10.1.2.3,bogus"])
    assert r.ok
    assert not r.settings.tproxy
    assert any("means REDIRECT" in n for n in r.notes)
    assert [c.with_prefixlen for c in r.settings.outbound_ip_ranges_include] == ["10.0.0.0/8"]
    assert sum("istio-iptables skips it" in n for n in r.notes) == 2
    assert r.settings.proxy_uids == ("1337",)


@pytest.mark.parametrize(
    ("args", "name", "fragment"),
    [
        (["-p", "abc"], "-p (--envoy-port)", "pod never starts"),
        (["--istio-local-exclude-ports=80,x"], "--istio-local-exclude-ports", "'x'"),
        (["-x", "*"], "-x (--istio-service-exclude-cidr)", "'*' is not allowed"),
        (["--no-such-flag=1"], "--no-such-flag", "unknown flag"),
        (["-Z", "1"], "-Z", "unknown shorthand"),
        (["-u"], "-u", "needs an argument"),
        (["--istio-inbound-tproxy-mark", "mark"], "--istio-inbound-tproxy-mark", "not a number"),
    ],
)
def test_errors_are_data_naming_the_flag(args: list[str], name: str, fragment: str) -> None:
    r = settings_from_init_args(args)
    assert not r.ok
    (issue,) = r.errors
    assert issue.name == name and issue.source.startswith("istio-init")
    assert fragment in issue.message


def test_flags_that_stop_rules_from_being_applied() -> None:
    assert not settings_from_init_args(["-n"]).applies
    assert not settings_from_init_args(["--run-validation", "--skip-rule-apply"]).applies
    assert not settings_from_init_args(["--cleanup-only"]).applies
    assert not settings_from_init_args(["istio-clean-iptables"]).applies
    assert settings_from_init_args(["--dry-run=false"]).applies


def test_pod_addresses_and_resolv_conf_come_from_outside_the_arguments() -> None:
    r = settings_from_init_args(
        ["--redirect-dns"], dns_servers=["10.96.0.10", "fd00::a"], pod_ips=["fd00::5", "10.0.0.5"]
    )
    assert r.settings.dns_servers_v4 == ("10.96.0.10",) and r.settings.dns_servers_v6 == ("fd00::a",)
    assert r.settings.enable_ipv6
    r = settings_from_init_args(["--redirect-dns"], pod_ips=["10.0.0.5", "fd00::5"])
    assert not r.settings.enable_ipv6
    assert any("modelled as off" in n for n in r.notes)
    assert settings_from_init_args(["--dual-stack"], pod_ips=["10.0.0.5", "fd00::5"]).settings.enable_ipv6
