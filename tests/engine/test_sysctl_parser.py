"""`parse_sysctls`: `sysctl -a`, `key=value`, /proc/sys paths, commands."""

from __future__ import annotations

from meshviz.engine.routing.sysctl import normalise_key, parse_sysctls


def test_sysctl_a_style_lines() -> None:
    r = parse_sysctls("net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.route_localnet = 1\n")
    assert not r.errors and not r.warnings
    assert r.sysctls.get("net.ipv4.ip_forward") == 1
    assert r.sysctls.conf("eth0", "route_localnet") == 1


def test_key_equals_value_without_spaces() -> None:
    r = parse_sysctls("net.ipv4.conf.eth0.rp_filter=2")
    assert r.sysctls.conf("eth0", "rp_filter") == 2


def test_proc_paths_with_colon_and_with_space() -> None:
    text = "/proc/sys/net/ipv4/conf/all/rp_filter:1\n/proc/sys/net/ipv4/conf/eth0/src_valid_mark 1\n"
    r = parse_sysctls(text)
    assert not r.errors
    assert dict(r.sysctls.values) == {
        "net.ipv4.conf.all.rp_filter": "1",
        "net.ipv4.conf.eth0.src_valid_mark": "1",
    }


def test_sysctl_w_and_echo_commands() -> None:
    text = "$ sysctl -a | grep forward\nsudo sysctl -w net.ipv4.ip_forward=1\necho 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet\n"
    r = parse_sysctls(text)
    assert not r.errors, r.errors
    assert r.sysctls.get("net.ipv4.ip_forward") == 1
    assert r.sysctls.get("net.ipv4.conf.eth0.route_localnet") == 1


def test_comments_and_blank_lines_are_skipped() -> None:
    r = parse_sysctls("# pod sysctls\n\n; old style comment\nnet.ipv4.ip_forward = 0\n")
    assert not r.errors and not r.warnings and len(r.sysctls.values) == 1


def test_interface_names_with_dots_keep_their_dots() -> None:
    assert normalise_key("net.ipv4.conf.eth0/100.rp_filter") == "net.ipv4.conf.eth0.100.rp_filter"
    assert normalise_key("/proc/sys/net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0.100.rp_filter"
    r = parse_sysctls("net.ipv4.conf.eth0/100.rp_filter = 1")
    assert r.sysctls.conf("eth0.100", "rp_filter") == 1


def test_malformed_line_is_an_error_with_a_column() -> None:
    r = parse_sysctls("net.ipv4.ip_forward = 1\nthis is not a sysctl\n", source="sysctl.txt")
    (err,) = r.errors
    assert (err.source, err.line, err.column) == ("sysctl.txt", 2, 1)


def test_missing_value_of_a_modelled_key_is_an_error_at_the_end_of_the_line() -> None:
    line = "net.ipv4.ip_forward ="
    (err,) = parse_sysctls(line).errors
    assert err.column == len(line) + 1 and "missing value" in err.message


def test_empty_values_printed_by_sysctl_a_are_kept_for_other_keys() -> None:
    r = parse_sysctls("net.ipv4.ip_local_reserved_ports = \nkernel.panic_sys_info =\n")
    assert not r.errors
    assert dict(r.sysctls.values) == {"net.ipv4.ip_local_reserved_ports": "", "kernel.panic_sys_info": ""}


def test_modelled_key_needs_an_integer() -> None:
    line = "net.ipv4.conf.all.rp_filter = strict"
    (err,) = parse_sysctls(line).errors
    assert "integer" in err.message and err.column == line.index("strict") + 1


def test_unmodelled_network_keys_are_kept_with_a_warning() -> None:
    r = parse_sysctls("net.core.somaxconn = 4096\nnet.ipv4.ip_local_port_range = 32768\t60999\n")
    assert not r.errors
    assert len(r.warnings) == 1 and "net.core.somaxconn" in r.warnings[0].message
    assert dict(r.sysctls.values)["net.ipv4.ip_local_port_range"] == "32768 60999"


def test_non_network_keys_are_summarised_in_one_warning() -> None:
    r = parse_sysctls("kernel.pid_max = 4194304\nvm.swappiness = 60\nfs.file-max = 100\n")
    assert not r.errors and len(r.warnings) == 1 and "3 non-network keys" in r.warnings[0].message


def test_later_value_wins() -> None:
    r = parse_sysctls("net.ipv4.ip_forward = 1\nnet.ipv4.ip_forward = 0\n")
    assert r.sysctls.get("net.ipv4.ip_forward") == 0
    assert len(r.sysctls.values) == 1


def test_sysctl_permission_messages_are_skipped_with_a_warning() -> None:
    r = parse_sysctls("sysctl: permission denied on key 'fs.protected_regular'\nnet.ipv4.ip_forward = 1\n")
    assert not r.errors and r.sysctls.get("net.ipv4.ip_forward") == 1 and len(r.warnings) == 1
