"""`!` negation, quoting and escapes, option spellings and getopt's rules for who owns an option."""

from __future__ import annotations

import ipaddress

import pytest

from meshviz.engine.netfilter.model import AddrCriterion, IfaceCriterion, Match, MatchOption, Rule, Target
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.tokens import restore_tokens_with_columns

from .iptables_util import only_rule, parse_ok


def one(rule_spec: str, table: str = "filter", chain: str = "INPUT") -> Rule:
    return only_rule(parse_ok(f"*{table}\n-A {chain} {rule_spec}\nCOMMIT\n"), table, chain)


# ---- negation ----


def test_negated_builtin_criteria():
    r = one("! -s 10.0.0.0/8 ! -d 10.1.2.3 ! -i eth0 ! -p udp -j ACCEPT")
    assert r.src == AddrCriterion(ipaddress.ip_network("10.0.0.0/8"), negated=True)
    assert r.dst == AddrCriterion(ipaddress.ip_network("10.1.2.3/32"), negated=True)
    assert r.in_iface == IfaceCriterion("eth0", negated=True)
    assert (r.protocol, r.protocol_negated) == ("udp", True)


def test_negated_match_options():
    r = one("-p tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j RETURN")
    assert r.matches == (
        Match("tcp", (MatchOption("dport", ("15008",), negated=True),), implicit=True),
        Match("mark", (MatchOption("mark", ("0x539/0xfff",), negated=True),)),
    )


def test_negated_fragment_flag():
    assert one("! -f -j ACCEPT").fragment is False
    assert one("-f -j ACCEPT").fragment is True


def test_legacy_intrapositioned_negation_is_normalised_with_a_warning():
    r = parse_iptables("*filter\n-A INPUT -p tcp --dport ! 80 -j ACCEPT\nCOMMIT\n")
    assert not r.errors
    rule = only_rule(r)
    assert rule.matches[0].options == (MatchOption("dport", ("80",), negated=True),)
    (w,) = r.warnings
    assert w.line == 2
    assert w.message == (
        "`--dport ! 80' uses the old intrapositioned negation (iptables 1.8 rejects it); read as `! --dport 80'"
    )


def test_legacy_intrapositioned_negation_of_an_address():
    r = parse_iptables("*filter\n-A INPUT -s ! 10.0.0.1 -j ACCEPT\nCOMMIT\n")
    assert not r.errors
    assert only_rule(r).src == AddrCriterion(ipaddress.ip_network("10.0.0.1/32"), negated=True)
    assert "read as `! -s 10.0.0.1'" in r.warnings[0].message


def test_a_bang_value_of_an_option_that_cannot_be_negated_is_just_a_value():
    assert one("-m comment --comment ! -j ACCEPT").comment() == "!"


def test_negating_an_option_that_cannot_be_negated_is_an_error():
    r = parse_iptables("*filter\n-A INPUT -m comment ! --comment x -j ACCEPT\nCOMMIT\n")
    (e,) = r.errors
    assert (e.column, e.message) == (21, "comment: option `--comment' cannot be inverted")


def test_negating_all_protocols_never_matches_and_is_refused():
    r = parse_iptables("*filter\n-A INPUT ! -p all -j ACCEPT\nCOMMIT\n")
    (e,) = r.errors
    assert (e.column, e.message) == (10, "rule would never match protocol")


# ---- quoting ----


def test_comment_with_spaces_and_escaped_quotes():
    assert one('-m comment --comment "kubernetes service portals" -j ACCEPT').comment() == "kubernetes service portals"
    assert one('-m comment --comment "a \\"quoted\\" thing" -j ACCEPT').comment() == 'a "quoted" thing'
    assert one('-m comment --comment "back\\\\slash" -j ACCEPT').comment() == "back\\slash"


def test_log_prefix_keeps_its_trailing_space():
    r = one('-j LOG --log-prefix "x: "')
    assert r.target == Target("LOG", (MatchOption("log-prefix", ("x: ",)),))


def test_empty_quoted_string_is_an_empty_value():
    assert one('-m comment --comment "" -j ACCEPT').comment() == ""


def test_single_quotes_are_ordinary_characters_for_iptables_restore():
    r = parse_iptables("*filter\n-A INPUT -m comment --comment 'a b' -j ACCEPT\nCOMMIT\n")
    (e,) = r.errors
    assert (e.column, e.message) == (34, "Bad argument `b''")


def test_restore_tokenizer_reports_columns_and_joins_an_opening_quote_to_its_word():
    assert restore_tokens_with_columns('-A X --comment pre"a b" tail') == [
        ("-A", 0),
        ("X", 3),
        ("--comment", 5),
        ("prea b", 15),
        ("tail", 24),
    ]


def test_a_closing_quote_ends_the_word():
    assert [t for t, _ in restore_tokens_with_columns('"a b"c')] == ["a b", "c"]


# ---- option spellings and ownership ----


@pytest.mark.parametrize(
    ("spec", "module", "option"),
    [
        ("-p tcp --destination-port 80", "tcp", "dport"),
        ("-p tcp --source-port 80", "tcp", "sport"),
        ("-p udp --dport 53", "udp", "dport"),
        ("-m owner --uid 1337", "owner", "uid-owner"),  # unique prefix
        ("-p tcp -m multiport --destination-ports 1,2", "multiport", "dports"),
        ("-m state --state NEW", "state", "state"),
        ("-m conntrack --ctstate NEW", "conntrack", "ctstate"),
    ],
)
def test_option_aliases_and_prefixes_are_stored_under_the_canonical_long_name(spec: str, module: str, option: str):
    chain = "OUTPUT" if "owner" in spec else "INPUT"
    (m,) = one(f"{spec} -j ACCEPT", chain=chain).matches
    assert (m.module, m.options[0].name) == (module, option)


def test_to_port_is_a_prefix_of_to_ports():
    r = one("-p udp -j REDIRECT --to-port 15053", table="nat", chain="OUTPUT")
    assert r.target == Target("REDIRECT", (MatchOption("to-ports", ("15053",)),))


def test_protocol_numbers_and_case_are_canonicalised():
    assert one("-p 6 --dport 80 -j ACCEPT").protocol == "tcp"
    assert one("-p UDP -j ACCEPT").protocol == "udp"
    assert one("-p 58 -j ACCEPT").protocol == "ipv6-icmp"
    assert one("-p 132 -j ACCEPT").protocol == "sctp"
    assert one("-p 1 -j ACCEPT").protocol == "icmp"
    assert one("-p 47 -j ACCEPT").protocol == "gre"


def test_protocol_all_means_no_protocol():
    r = one("-p all -j ACCEPT")
    assert r.protocol is None and r.matches == ()


def test_implicit_and_explicit_protocol_matches():
    assert one("-p tcp --dport 80 -j ACCEPT").matches[0].implicit
    assert not one("-p tcp -m tcp --dport 80 -j ACCEPT").matches[0].implicit
    assert not one("-m tcp -p tcp --dport 80 -j ACCEPT").matches[0].implicit  # kube-proxy's order


def test_implicit_match_is_loaded_where_its_first_option_appears():
    r = one("-p tcp -m comment --comment x --dport 80 -j ACCEPT")
    assert [m.module for m in r.matches] == ["comment", "tcp"]


def test_an_option_goes_to_the_newest_extension_that_has_it():
    r = one("-p tcp -m mark --mark 1 -m connmark --mark 2 -j ACCEPT")
    assert r.matches == (
        Match("mark", (MatchOption("mark", ("1",)),)),
        Match("connmark", (MatchOption("mark", ("2",)),)),
    )


def test_dport_after_multiport_is_getopts_prefix_of_dports():
    (m,) = one("-p tcp -m multiport --dport 80 -j ACCEPT").matches
    assert m == Match("multiport", (MatchOption("dports", ("80",)),))


def test_syn_flag_and_tcp_flags_with_two_values():
    assert one("-p tcp --syn -j ACCEPT").matches[0].options == (MatchOption("syn"),)
    r = one("-p tcp --tcp-flags SYN,RST,ACK SYN -j ACCEPT")
    assert r.matches[0].options == (MatchOption("tcp-flags", ("SYN,RST,ACK", "SYN")),)


def test_match_set_takes_two_values():
    r = one("-p tcp -m set --match-set istio-inpod-probes-v4 dst -j ACCEPT")
    assert r.matches[0] == Match("set", (MatchOption("match-set", ("istio-inpod-probes-v4", "dst")),))


def test_goto_target():
    r = parse_ok("*filter\n:C - [0:0]\n-A INPUT -g C\nCOMMIT\n")
    assert only_rule(r).target == Target("C", (), goto=True)


def test_rule_without_target():
    r = one("-s 10.0.0.1")
    assert r.target is None


def test_target_options_belong_to_the_target():
    r = one("-p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006", table="mangle", chain="PREROUTING")
    assert r.target == Target(
        "TPROXY", (MatchOption("tproxy-mark", ("1337/0xffffffff",)), MatchOption("on-port", ("15006",)))
    )


def test_matches_may_follow_the_target_as_iptables_allows():
    r = one("-j ACCEPT -m comment --comment late")
    assert r.comment() == "late"
    assert r.target == Target("ACCEPT")


def test_long_forms_of_the_commands_own_options():
    r = one("--source 10.0.0.1 --protocol tcp --in-interface eth0 --jump ACCEPT")
    assert (str(r.src.network) if r.src else None, r.protocol, r.in_iface, r.target) == (
        "10.0.0.1/32",
        "tcp",
        IfaceCriterion("eth0"),
        Target("ACCEPT"),
    )


def test_option_with_an_attached_value():
    r = one("-p tcp --dport=80 -j ACCEPT")
    assert r.matches[0].options == (MatchOption("dport", ("80",)),)


def test_interface_wildcard_is_kept():
    assert one("-i veth+ -j ACCEPT").in_iface == IfaceCriterion("veth+")


def test_address_without_prefix_is_a_host_and_host_bits_are_cleared():
    assert one("-s 10.1.2.3 -j ACCEPT").src == AddrCriterion(ipaddress.ip_network("10.1.2.3/32"))
    assert one("-s 10.1.2.3/8 -j ACCEPT").src == AddrCriterion(ipaddress.ip_network("10.0.0.0/8"))
    assert one("-s 10.1.2.3/255.255.0.0 -j ACCEPT").src == AddrCriterion(ipaddress.ip_network("10.1.0.0/16"))


def test_iptables_octal_and_short_ipv4_forms_are_read_like_iptables_with_a_warning():
    r = parse_iptables("*filter\n-A INPUT -s 010.1.1.1 -j ACCEPT\nCOMMIT\n")
    assert not r.errors
    assert only_rule(r).src == AddrCriterion(ipaddress.ip_network("8.1.1.1/32"))
    assert r.warnings[0].message == "address `010.1.1.1' is read by iptables as 8.1.1.1"


def test_fast_tokenizer_agrees_with_the_column_tokenizer():
    import random

    from meshviz.engine.netfilter.tokens import TokenizeError, restore_tokens

    rnd = random.Random(7)
    alphabet = ['"', "\\", " ", "\t", "a", "b", "-", "!", "'", "x y"]
    for _ in range(5000):
        line = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
        try:
            expected = [t for t, _ in restore_tokens_with_columns(line)]
        except TokenizeError:
            with pytest.raises(TokenizeError):
                restore_tokens(line)
            continue
        assert restore_tokens(line) == expected, repr(line)
