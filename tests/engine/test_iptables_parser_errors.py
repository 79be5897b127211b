"""Errors are data: each one names the line, the 1-based column of the offending token, the full line
text and a message; the line is skipped and parsing goes on."""

from __future__ import annotations

import pytest

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.model import Match, MatchOption
from meshviz.engine.netfilter.parser import parse_iptables

from .iptables_util import rules


def only_error(text: str, **kw: object) -> ParseError:
    r = parse_iptables(text, **kw)  # type: ignore[arg-type]
    assert len(r.errors) == 1, [str(e) for e in r.errors]
    return r.errors[0]


def check(e: ParseError, line: int, column: int, text: str, message: str) -> None:
    assert (e.line, e.column, e.text, e.message) == (line, column, text, message)


def test_unknown_match_module():
    e = only_error("*filter\n-A INPUT -m nosuch --foo 1 -j ACCEPT\nCOMMIT\n")
    check(e, 2, 13, "-A INPUT -m nosuch --foo 1 -j ACCEPT", "Couldn't load match `nosuch': unknown match module")


def test_unknown_option_for_a_module():
    e = only_error("*filter\n-A INPUT -p tcp -m tcp --dportt 80 -j ACCEPT\nCOMMIT\n")
    check(e, 2, 24, "-A INPUT -p tcp -m tcp --dportt 80 -j ACCEPT", "unknown option `--dportt'")


def test_ambiguous_option_prefix_is_unknown_like_getopt_says():
    e = only_error("*filter\n-A INPUT -m conntrack --ctstat NEW -j ACCEPT\nCOMMIT\n")
    check(e, 2, 23, "-A INPUT -m conntrack --ctstat NEW -j ACCEPT", "unknown option `--ctstat'")


def test_option_missing_its_value():
    e = only_error("*filter\n-A INPUT -p tcp --dport\nCOMMIT\n")
    check(e, 2, 17, "-A INPUT -p tcp --dport", "option `--dport' requires an argument")


def test_two_value_option_missing_its_second_value():
    e = only_error("*filter\n-A INPUT -p tcp --tcp-flags SYN -j ACCEPT\nCOMMIT\n")
    check(e, 2, 17, "-A INPUT -p tcp --tcp-flags SYN -j ACCEPT", "--tcp-flags requires two args.")


def test_unknown_target_that_is_not_a_declared_chain():
    e = only_error("*filter\n-A INPUT -j NOPE\nCOMMIT\n")
    check(
        e,
        2,
        13,
        "-A INPUT -j NOPE",
        "Couldn't load target `NOPE': no such target and no chain of that name in table `filter'",
    )


def test_chain_declared_after_its_first_use_is_refused_like_iptables_restore():
    e = only_error("*filter\n-A INPUT -j LATER\n:LATER - [0:0]\nCOMMIT\n")
    check(
        e,
        2,
        13,
        "-A INPUT -j LATER",
        "chain `LATER' is declared on line 3, after this rule uses it;"
        " iptables-restore needs a chain declared before a rule jumps to it",
    )


def test_jump_to_a_builtin_chain():
    e = only_error("*filter\n-A INPUT -j OUTPUT\nCOMMIT\n")
    check(e, 2, 13, "-A INPUT -j OUTPUT", "cannot jump to built-in chain `OUTPUT'")


def test_tproxy_in_the_nat_table():
    e = only_error("*nat\n-A PREROUTING -p tcp -j TPROXY --on-port 15006\nCOMMIT\n")
    check(
        e,
        2,
        25,
        "-A PREROUTING -p tcp -j TPROXY --on-port 15006",
        "target `TPROXY' is only valid in the mangle table, not in `nat'",
    )


def test_tproxy_in_mangle_output():
    e = only_error("*mangle\n-A OUTPUT -p tcp -j TPROXY --on-port 15006\nCOMMIT\n")
    check(
        e,
        2,
        21,
        "-A OUTPUT -p tcp -j TPROXY --on-port 15006",
        "target `TPROXY' is only valid in chains reached from PREROUTING; the kernel rejects it in OUTPUT",
    )


def test_tproxy_in_a_user_chain_reached_from_output():
    text = "*mangle\n-N DIVERT\n-A DIVERT -p tcp -j TPROXY --on-port 15006\n-A PREROUTING -j DIVERT\n-A OUTPUT -j DIVERT\nCOMMIT\n"
    e = only_error(text)
    check(
        e,
        3,
        21,
        "-A DIVERT -p tcp -j TPROXY --on-port 15006",
        "target `TPROXY' is only valid in chains reached from PREROUTING; the kernel rejects it in DIVERT"
        " (chain `DIVERT' is reached from OUTPUT)",
    )


def test_tproxy_in_a_user_chain_reached_only_from_prerouting_is_fine():
    text = "*mangle\n-N DIVERT\n-A DIVERT -p tcp -j TPROXY --on-port 15006\n-A PREROUTING -j DIVERT\nCOMMIT\n"
    assert not parse_iptables(text).errors


def test_redirect_in_postrouting():
    e = only_error("*nat\n-A POSTROUTING -p tcp -j REDIRECT --to-ports 1\nCOMMIT\n")
    check(
        e,
        2,
        26,
        "-A POSTROUTING -p tcp -j REDIRECT --to-ports 1",
        "target `REDIRECT' is only valid in chains reached from PREROUTING, OUTPUT; the kernel rejects it in POSTROUTING",
    )


def test_ct_outside_the_raw_table():
    e = only_error("*mangle\n-A OUTPUT -j CT --zone 1\nCOMMIT\n")
    check(e, 2, 14, "-A OUTPUT -j CT --zone 1", "target `CT' is only valid in the raw table, not in `mangle'")


def test_owner_match_in_input():
    e = only_error("*filter\n-A INPUT -m owner --uid-owner 1 -j ACCEPT\nCOMMIT\n")
    check(
        e,
        2,
        13,
        "-A INPUT -m owner --uid-owner 1 -j ACCEPT",
        "match `owner' is only valid in chains reached from OUTPUT, POSTROUTING; the kernel rejects it in INPUT",
    )


def test_drop_in_the_nat_table():
    e = only_error("*nat\n-A PREROUTING -j DROP\nCOMMIT\n")
    check(
        e,
        2,
        18,
        "-A PREROUTING -j DROP",
        'The "nat" table is not intended for filtering, the use of DROP is therefore inhibited.',
    )


def test_rule_before_any_table():
    e = only_error("-A INPUT -j ACCEPT\n*filter\nCOMMIT\n")
    check(
        e,
        1,
        1,
        "-A INPUT -j ACCEPT",
        "rule outside a table block: expected `*table' before it (or it comes after COMMIT)",
    )


def test_commit_missing_at_end_of_input_points_at_the_table_header():
    r = parse_iptables("*filter\n-A INPUT -j ACCEPT\n")
    (e,) = r.errors
    check(
        e, 1, 1, "*filter", "COMMIT expected: table `filter' opened here is not committed before the end of the input"
    )
    assert len(rules(r, "filter", "INPUT")) == 1  # what was read is still shown


def test_unknown_table_name_and_its_lines_are_skipped():
    r = parse_iptables("*filtre\n-A INPUT -j ACCEPT\nCOMMIT\n*filter\n-A INPUT -j DROP\nCOMMIT\n")
    (e,) = r.errors
    check(e, 1, 2, "*filtre", "unknown table `filtre' (valid: raw, mangle, nat, filter, security)")
    assert [x.target.name for x in rules(r, "filter", "INPUT") if x.target] == ["DROP"]


@pytest.mark.parametrize(
    ("line", "column", "message"),
    [
        ("-A INPUT -s 10.0.0.300 -j ACCEPT", 13, "host/network `10.0.0.300' not found"),
        ("-A INPUT -d 10.0.0.0/33 -j ACCEPT", 13, "invalid mask `33' specified"),
        ("-A INPUT -s localhost -j ACCEPT", 13, "host name `localhost' cannot be resolved offline; give an address"),
        ("-A INPUT -p tcp --dport 70000 -j ACCEPT", 25, "tcp --dport: invalid port/service `70000' specified"),
        ("-A INPUT -p udp -m udp --sport 90:80 -j ACCEPT", 32, "udp --sport: invalid portrange (min > max)"),
        (
            "-A INPUT -m mark --mark 0x1/0x1/2 -j ACCEPT",
            25,
            "mark --mark: bad mark `0x1/0x1/2' (expected value[/mask], each a 32-bit number)",
        ),
        (
            "-A INPUT -m conntrack --ctstate NEW,BOGUS -j ACCEPT",
            33,
            "conntrack --ctstate: bad ctstate `BOGUS' in `NEW,BOGUS' (valid: DNAT, ESTABLISHED, INVALID, NEW, RELATED, SNAT, UNTRACKED)",
        ),
        ("-A INPUT -p tcpp -j ACCEPT", 13, 'unknown protocol "tcpp" specified'),
        (
            "-A INPUT -i 0123456789abcdef -j ACCEPT",
            13,
            "interface name `0123456789abcdef' must be shorter than IFNAMSIZ (15)",
        ),
    ],
)
def test_malformed_values(line: str, column: int, message: str):
    e = only_error(f"*filter\n{line}\nCOMMIT\n")
    check(e, 2, column, line, message)


def test_malformed_mark_of_a_target():
    e = only_error("*mangle\n-A PREROUTING -j MARK --set-mark 1337x\nCOMMIT\n")
    check(
        e,
        2,
        34,
        "-A PREROUTING -j MARK --set-mark 1337x",
        "MARK --set-mark: bad mark `1337x' (expected value[/mask], each a 32-bit number)",
    )


def test_malformed_nat_destination():
    e = only_error("*nat\n-A OUTPUT -p tcp -j DNAT --to-destination 10.0.0.1:99999\nCOMMIT\n")
    check(
        e,
        2,
        43,
        "-A OUTPUT -p tcp -j DNAT --to-destination 10.0.0.1:99999",
        "DNAT --to-destination: invalid port `99999' in `99999'",
    )


def test_output_interface_in_input_chain():
    e = only_error("*filter\n-A INPUT -o eth0 -j ACCEPT\nCOMMIT\n")
    check(e, 2, 10, "-A INPUT -o eth0 -j ACCEPT", "Can't use -o with INPUT")


def test_tcp_match_without_protocol():
    e = only_error("*filter\n-A INPUT -m tcp --dport 80 -j ACCEPT\nCOMMIT\n")
    check(e, 2, 13, "-A INPUT -m tcp --dport 80 -j ACCEPT", "match `tcp' requires `-p tcp'")


def test_nat_port_without_protocol():
    e = only_error("*nat\n-A OUTPUT -j REDIRECT --to-ports 15001\nCOMMIT\n")
    check(
        e,
        2,
        14,
        "-A OUTPUT -j REDIRECT --to-ports 15001",
        "REDIRECT: Need TCP, UDP, SCTP or DCCP with port specification",
    )


def test_loop_between_user_chains():
    text = "*filter\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n"
    e = only_error(text)
    check(e, 6, 9, "-A B -j A", "jump to `A' makes a loop (Too many links)")


def test_minority_ipv6_address_in_an_ipv4_payload():
    text = (
        "*filter\n-A INPUT -s 10.0.0.1 -j ACCEPT\n-A INPUT -s 10.0.0.2 -j ACCEPT\n-A INPUT -d ::1 -j ACCEPT\nCOMMIT\n"
    )
    r = parse_iptables(text)
    (e,) = r.errors
    check(e, 4, 13, "-A INPUT -d ::1 -j ACCEPT", "address `::1' is IPv6, but this is an IPv4 ruleset")
    assert len(rules(r, "filter", "INPUT")) == 2


def test_ipv6_only_match_in_an_ipv4_payload():
    text = "*filter\n-A INPUT -s 10.0.0.1 -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT\nCOMMIT\n"
    r = parse_iptables(text, family=Family.IPV4)
    (e,) = r.errors
    check(
        e,
        2,
        38,
        "-A INPUT -s 10.0.0.1 -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT",
        "match `icmp6' exists only for IPv6, but this is an IPv4 ruleset",
    )


def test_table_option_inside_a_restore_payload():
    e = only_error("*filter\n-A INPUT -t nat -j ACCEPT\nCOMMIT\n")
    check(e, 2, 10, "-A INPUT -t nat -j ACCEPT", "The -t option cannot be used in iptables-restore")


def test_insert_position_past_the_end():
    e = only_error("*filter\n-I INPUT 3 -j ACCEPT\nCOMMIT\n")
    check(e, 2, 10, "-I INPUT 3 -j ACCEPT", "Index of insertion too big: chain `INPUT' has 0 rules, cannot insert at 3")


def test_unterminated_quote():
    e = only_error('*filter\n-A INPUT -m comment --comment "open -j ACCEPT\nCOMMIT\n')
    check(e, 2, 31, '-A INPUT -m comment --comment "open -j ACCEPT', "unterminated quoted string")


def test_stray_argument():
    e = only_error("*filter\n-A INPUT foo -j ACCEPT\nCOMMIT\n")
    check(e, 2, 10, "-A INPUT foo -j ACCEPT", "Bad argument `foo'")


def test_rule_for_a_chain_that_does_not_exist():
    e = only_error("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n")
    check(e, 2, 4, "-A NOPE -j ACCEPT", "chain `NOPE' does not exist in table `filter'")


def test_new_chain_that_already_exists():
    e = only_error("*filter\n-N X\n-N X\nCOMMIT\n")
    check(e, 3, 4, "-N X", "chain `X' already exists")


def test_commit_without_a_table():
    e = only_error("COMMIT\n")
    check(e, 1, 1, "COMMIT", "COMMIT without an open `*table' block")


def test_line_that_is_no_iptables_at_all():
    e = only_error("echo hello\n")
    check(e, 1, 1, "echo hello", "unrecognised line: `echo' is not an iptables command")


def test_error_columns_count_from_the_start_of_a_command_line():
    e = only_error("$ sudo iptables -t nat -A OUTPUT -p tcp -j REDIRECT --to-ports x\n")
    check(
        e,
        1,
        64,
        "$ sudo iptables -t nat -A OUTPUT -p tcp -j REDIRECT --to-ports x",
        "REDIRECT --to-ports: invalid port `x' in `x'",
    )


def test_parsing_goes_on_after_an_error_line():
    r = parse_iptables("*filter\n-A INPUT -s bad -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n")
    assert [e.line for e in r.errors] == [2]
    assert [x.target.name for x in rules(r, "filter", "INPUT") if x.target] == ["DROP"]


def test_errors_come_sorted_by_line_and_column():
    r = parse_iptables("*filter\n-A INPUT -j LATER\n-A INPUT -s nope -j ACCEPT\n:LATER - [0:0]\nCOMMIT\n")
    assert [(e.line, e.column) for e in r.errors] == [(2, 13), (3, 13)]


# --------------------------------------------------------------------------
# Lenient mode (strict=False): what strict reports as unknown becomes a warning.
# --------------------------------------------------------------------------


def test_lenient_mode_keeps_an_unknown_module_as_an_unparsed_match():
    r = parse_iptables("*filter\n-A INPUT -m nosuch --foo 1 -j ACCEPT\nCOMMIT\n", strict=False)
    assert not r.errors
    (rule,) = rules(r, "filter", "INPUT")
    assert rule.matches == (
        Match("unparsed", (MatchOption("", ("-m", "nosuch")), MatchOption("", ("--foo",)), MatchOption("", ("1",)))),
    )
    assert rule.target is not None and rule.target.name == "ACCEPT"
    assert [w.line for w in r.warnings] == [2, 2]


def test_lenient_mode_turns_a_too_large_insert_position_into_an_append():
    r = parse_iptables("*filter\n-A INPUT -j DROP\n-I INPUT 5 -j ACCEPT\nCOMMIT\n", strict=False)
    assert not r.errors
    assert [x.target.name for x in rules(r, "filter", "INPUT") if x.target] == ["DROP", "ACCEPT"]
    (w,) = r.warnings
    assert w.message.endswith("; appended at the end")


def test_lenient_mode_still_reports_malformed_values_as_errors():
    r = parse_iptables("*filter\n-A INPUT -s 10.0.0.300 -j ACCEPT\nCOMMIT\n", strict=False)
    assert [e.message for e in r.errors] == ["host/network `10.0.0.300' not found"]
