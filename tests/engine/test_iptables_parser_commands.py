"""One iptables command per line, applied in order to an in-memory model."""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.model import Match, MatchOption
from meshviz.engine.netfilter.parser import FORMAT_COMMANDS, IptablesParseResult, parse_iptables
from meshviz.engine.netfilter.render import render_rule

from .iptables_util import chain, parse_ok, rules, ruleset


def texts(result: IptablesParseResult, table: str, name: str, family: Family = Family.IPV4) -> list[str]:
    return [render_rule(r) for r in rules(result, table, name, family)]


def test_program_names_wait_flags_prompt_and_sudo_are_understood():
    text = (
        "$ sudo iptables -w -t nat -N ISTIO_REDIRECT\n"
        "iptables-nft --wait 5 -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
        "/usr/sbin/iptables-legacy -t nat -A OUTPUT -p tcp -j ISTIO_REDIRECT\n"
    )
    r = parse_ok(text)
    assert r.format == FORMAT_COMMANDS
    assert texts(r, "nat", "OUTPUT") == ["-A OUTPUT -p tcp -j ISTIO_REDIRECT"]
    assert texts(r, "nat", "ISTIO_REDIRECT") == ["-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"]


def test_ip6tables_commands_build_the_ipv6_ruleset():
    r = parse_ok("iptables -A INPUT -j ACCEPT\nip6tables -A INPUT -j DROP\nip6tables-nft -A INPUT -j REJECT\n")
    assert [rs.family for rs in r.rulesets] == [Family.IPV4, Family.IPV6]
    assert texts(r, "filter", "INPUT", Family.IPV6) == ["-A INPUT -j DROP", "-A INPUT -j REJECT"]


def test_table_option_may_come_after_the_command():
    r = parse_ok("iptables -A OUTPUT -t nat -p tcp -j REDIRECT --to-ports 15001\n")
    assert texts(r, "nat", "OUTPUT") == ["-A OUTPUT -p tcp -j REDIRECT --to-ports 15001"]


def test_default_table_is_filter():
    r = parse_ok("iptables -A FORWARD -j DROP\n")
    assert [t.name for t in ruleset(r).tables] == ["filter"]


def test_insert_delete_replace_in_order():
    text = (
        "iptables -A INPUT -j DROP\n"
        "iptables -I INPUT -s 1.1.1.1,2.2.2.2 -j ACCEPT\n"  # inserted at 1: 2.2.2.2 ends up first
        "iptables -D INPUT -s 2.2.2.2 -j ACCEPT\n"
        "iptables -I INPUT 2 -j LOG\n"
        "iptables -R INPUT 1 -s 9.9.9.9/32 -j ACCEPT\n"
        "iptables -D INPUT 3\n"
    )
    r = parse_ok(text)
    assert texts(r, "filter", "INPUT") == ["-A INPUT -s 9.9.9.9/32 -j ACCEPT", "-A INPUT -j LOG"]


def test_delete_by_spec_treats_implicit_and_explicit_tcp_match_as_the_same_rule():
    r = parse_ok(
        "iptables -A INPUT -p tcp --dport 80 -j ACCEPT\niptables -D INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n"
    )
    assert texts(r, "filter", "INPUT") == []


def test_new_chain_rename_flush_and_delete():
    text = (
        "iptables -N FOO\n"
        "iptables -A FOO -j ACCEPT\n"
        "iptables -E FOO BAR\n"
        "iptables -A INPUT -j BAR\n"
        "iptables -F BAR\n"
        "iptables -D INPUT -j BAR\n"
        "iptables -X BAR\n"
    )
    r = parse_ok(text)
    t = ruleset(r).table("filter")
    assert t is not None and [c.name for c in t.chains] == ["INPUT", "FORWARD", "OUTPUT"]


def test_rename_updates_jumps_to_the_chain():
    r = parse_ok("iptables -N FOO\niptables -A INPUT -j FOO\niptables -E FOO BAR\n")
    (rule,) = rules(r, "filter", "INPUT")
    assert rule.target is not None and rule.target.name == "BAR"


def test_policy_command_sets_the_policy():
    r = parse_ok("iptables -P FORWARD DROP\n")
    assert chain(ruleset(r), "filter", "FORWARD").policy == "DROP"


def test_zero_list_and_check_commands_change_nothing_and_are_noted():
    r = parse_iptables("iptables -A INPUT -j ACCEPT\niptables -Z\niptables -L INPUT\niptables -C INPUT -j ACCEPT\n")
    assert not r.errors
    assert [(w.line, w.message.split(";")[0]) for w in r.warnings] == [
        (2, "-Z zeroes counters"),
        (3, "-L lists rules"),
        (4, "-C only checks whether a rule exists"),
    ]
    assert len(rules(r, "filter", "INPUT")) == 1


def test_save_marker_lines_between_commands_are_ignored():
    r = parse_ok("iptables-save\niptables -A INPUT -j ACCEPT\nip6tables-save\n")
    assert r.format == FORMAT_COMMANDS
    assert [rs.family for rs in r.rulesets] == [Family.IPV4]


def test_backslash_continues_a_command_on_the_next_line():
    r = parse_ok("iptables -t nat -A OUTPUT -p tcp \\\n    -j REDIRECT --to-ports 15001\n")
    (rule,) = rules(r, "nat", "OUTPUT")
    assert rule.ref is not None and rule.ref.line == 1


def test_shell_single_quotes_group_words():
    r = parse_ok("iptables -A INPUT -m comment --comment 'two words' -j ACCEPT\n")
    (rule,) = rules(r, "filter", "INPUT")
    assert rule.comment() == "two words"


def test_bare_option_lines_are_commands_when_there_are_no_table_blocks():
    r = parse_ok("-t nat -N C\n-t nat -A C -j RETURN\n")
    assert r.format == FORMAT_COMMANDS
    assert texts(r, "nat", "C") == ["-A C -j RETURN"]


def test_bare_command_with_an_ipv6_address_goes_to_the_ipv6_ruleset():
    r = parse_ok("-A INPUT -s ::1 -j ACCEPT\n")
    assert [rs.family for rs in r.rulesets] == [Family.IPV6]


def test_commands_check_that_a_jump_target_exists_when_the_command_runs():
    r = parse_iptables("iptables -A INPUT -j LATER\niptables -N LATER\n")
    (e,) = r.errors
    assert (e.line, e.column) == (1, 22)
    assert e.message == "Chain `LATER' does not exist (and `LATER' is not a known target)"


def test_legacy_golden_commands_build_the_same_rules_as_the_restore_golden_except_output_jump():
    from .iptables_util import CORPUS

    legacy = parse_ok((CORPUS / "istio-iptables" / "legacy-1.23.0" / "empty.golden").read_text())
    current = parse_ok((CORPUS / "istio-iptables" / "empty.golden").read_text())
    assert legacy.format == FORMAT_COMMANDS
    assert texts(legacy, "nat", "ISTIO_OUTPUT") == texts(current, "nat", "ISTIO_OUTPUT")
    assert texts(legacy, "nat", "OUTPUT") == ["-A OUTPUT -p tcp -j ISTIO_OUTPUT"]
    assert texts(current, "nat", "OUTPUT") == ["-A OUTPUT -j ISTIO_OUTPUT"]


def test_implicit_match_of_a_command_is_marked_implicit():
    r = parse_ok("iptables -A INPUT -p udp --dport 53 -j ACCEPT\n")
    (rule,) = rules(r, "filter", "INPUT")
    assert rule.matches == (Match("udp", (MatchOption("dport", ("53",)),), implicit=True),)
