"""`parse_ip_rules`: `ip rule list` output, `ip rule add` commands, transcripts."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import Family
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.iproute2 import CUSTOM_TABLE_ID_BASE, table_id
from meshviz.engine.routing.model import RuleAction

DEFAULT_LISTING = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"


def test_default_listing_gives_local_main_default_tables() -> None:
    r = parse_ip_rules(DEFAULT_LISTING)
    assert not r.errors and not r.warnings
    assert [(x.priority, x.table, x.table_name) for x in r.rules] == [
        (0, 255, "local"),
        (32766, 254, "main"),
        (32767, 253, "default"),
    ]
    assert r.has_listing


def test_tab_and_space_aligned_listings_parse_identically() -> None:
    spaced = "0:      from all lookup local \n32766:  from all lookup main   \n32767:  from all lookup default\n"
    a = parse_ip_rules(DEFAULT_LISTING).rules
    b = parse_ip_rules(spaced).rules
    assert [(x.priority, x.table) for x in a] == [(x.priority, x.table) for x in b]


def test_fwmark_rule_hex_mark_selects_table_133() -> None:
    r = parse_ip_rules("32765:\tfrom all fwmark 0x539 lookup 133\n")
    (rule,) = r.rules
    assert (rule.priority, rule.fwmark, rule.fwmask, rule.table) == (32765, 1337, 0xFFFFFFFF, 133)
    assert rule.action == RuleAction.LOOKUP


def test_fwmark_with_mask_is_split_into_mark_and_mask() -> None:
    (rule,) = parse_ip_rules("32764:\tfrom all fwmark 0x111/0xfff lookup 100\n").rules
    assert (rule.fwmark, rule.fwmask, rule.table) == (0x111, 0xFFF, 100)
    (full,) = parse_ip_rules("100: from all fwmark 0x539/0xffffffff lookup 133").rules
    assert (full.fwmark, full.fwmask) == (1337, 0xFFFFFFFF)


def test_add_command_without_priority_gets_kernel_default_32765() -> None:
    r = parse_ip_rules("ip rule add fwmark 1337 lookup 133\n")
    (rule,) = r.rules
    assert rule.priority == 32765
    assert any("32765" in w.message for w in r.warnings)
    assert not r.has_listing


def test_second_add_without_priority_goes_below_the_first() -> None:
    r = parse_ip_rules("ip rule add fwmark 1337 lookup 133\nip rule add fwmark 0x2 lookup 2\n")
    assert sorted(x.priority for x in r.rules) == [32764, 32765]


def test_add_after_listing_counts_the_listed_rules() -> None:
    text = DEFAULT_LISTING + "$ ip rule add fwmark 1337 lookup 133\n"
    r = parse_ip_rules(text)
    assert [x.priority for x in r.rules] == [0, 32765, 32766, 32767]


def test_argument_forms_with_sudo_prompt_and_bare_arguments() -> None:
    text = (
        "$ sudo ip rule add fwmark 1337 lookup 133 priority 100\n"
        "root@pod:/# ip rule add from 10.0.0.5 table 10 pref 200\n"
        "rule add to 10.9.0.0/16 lookup 11 preference 300\n"
        "fwmark 7 lookup 12 pref 400\n"
    )
    r = parse_ip_rules(text)
    assert not r.errors, r.errors
    assert [(x.priority, x.table) for x in r.rules] == [(100, 133), (200, 10), (300, 11), (400, 12)]
    assert r.rules[1].src == ipaddress.ip_network("10.0.0.5/32")


def test_add_without_action_defaults_to_lookup_main() -> None:
    (rule,) = parse_ip_rules("ip rule add from 10.1.0.0/16 pref 50").rules
    assert (rule.action, rule.table, rule.table_name) == (RuleAction.LOOKUP, 254, "main")


def test_named_table_gets_a_stable_id_and_keeps_its_name() -> None:
    r = parse_ip_rules("1536:\tfrom 10.0.97.30 lookup eni-1\n")
    (rule,) = r.rules
    assert rule.table_name == "eni-1"
    assert rule.table == table_id("eni-1") >= CUSTOM_TABLE_ID_BASE
    assert r.table_names == (("eni-1", rule.table),)
    assert table_id("eni-1") == table_id("eni-1") != table_id("eni-2")


def test_table_ids_mapping_overrides_the_derived_id() -> None:
    (rule,) = parse_ip_rules("10: from all lookup eni-1", table_ids={"eni-1": 2}).rules
    assert rule.table == 2


def test_not_applies_to_the_whole_selector() -> None:
    (rule,) = parse_ip_rules("1025:\tnot from all to 10.0.0.0/16 lookup main \n").rules
    assert rule.not_ and rule.src is None and rule.dst == ipaddress.ip_network("10.0.0.0/16")


def test_actions_goto_nop_blackhole_unreachable_prohibit() -> None:
    text = (
        "10: from all to 10.73.0.0/16 goto 700\n"
        "20: from all nop\n"
        "30: from all to 10.77.0.0/16 blackhole\n"
        "40: from all to 10.78.0.0/16 unreachable\n"
        "50: from all to 10.79.0.0/16 prohibit\n"
        "700: from all lookup 140\n"
    )
    rules = parse_ip_rules(text).rules
    assert [x.action for x in rules] == [
        RuleAction.GOTO,
        RuleAction.NOP,
        RuleAction.BLACKHOLE,
        RuleAction.UNREACHABLE,
        RuleAction.PROHIBIT,
        RuleAction.LOOKUP,
    ]
    assert rules[0].goto == 700 and rules[0].table is None


def test_selectors_uidrange_ipproto_ports_iif_oif_tos() -> None:
    line = "900:\tfrom 10.0.0.0/8 to 10.1.0.0/16 tos 0x10 iif eth0 oif eth1 uidrange 1000-1999 ipproto udp sport 1000-2000 dport 5353 lookup 142"
    r = parse_ip_rules(line)
    assert not r.errors, r.errors
    (rule,) = r.rules
    assert rule.tos == 0x10 and rule.iif == "eth0" and rule.oif == "eth1"
    assert rule.uidrange == (1000, 1999) and rule.ipproto == "udp"
    assert rule.sport == (1000, 2000) and rule.dport == (5353, 5353)


def test_ipproto_number_is_normalised_to_its_name() -> None:
    (rule,) = parse_ip_rules("5: from all ipproto 6 lookup 7").rules
    assert rule.ipproto == "tcp"


def test_detached_iif_is_kept_with_a_warning() -> None:
    r = parse_ip_rules("100:\tfrom all iif veth9 [detached] lookup 5\n")
    assert r.rules[0].iif == "veth9"
    assert any("detached" in w.message for w in r.warnings)


def test_suppress_prefixlength_and_protocol() -> None:
    r = parse_ip_rules("800:\tfrom all fwmark 0x2000 lookup main suppress_prefixlength 0 proto static\n")
    assert not r.errors and not r.warnings
    assert r.rules[0].suppress_prefixlength == 0


def test_unknown_token_is_an_error_with_its_column() -> None:
    line = "100:\tfrom all frobnicate 3 lookup 5"
    r = parse_ip_rules(line, source="rules.txt")
    (err,) = r.errors
    assert err.source == "rules.txt" and err.line == 1
    assert err.column == line.index("frobnicate") + 1
    assert "frobnicate" in err.message
    assert r.rules == ()


def test_bad_fwmark_value_points_at_the_value() -> None:
    line = "ip rule add fwmark zz lookup 5"
    (err,) = parse_ip_rules(line).errors
    assert err.column == line.index("zz") + 1


def test_listing_line_without_action_is_an_error() -> None:
    (err,) = parse_ip_rules("100: from all fwmark 0x1").errors
    assert "action" in err.message


def test_route_sections_of_a_mixed_transcript_are_skipped() -> None:
    text = (
        "# ip route show\n"
        "default via 10.0.96.1 dev eth0 \n"
        "# ip route show table eni-1\n"
        "10.0.96.1 dev eth1  scope link \n"
        "# ip rule list\n"
        "0:\tfrom all lookup local \n"
        "512:\tfrom all to 10.0.97.30 lookup main\n"
    )
    r = parse_ip_rules(text)
    assert not r.errors and not r.warnings
    assert [x.priority for x in r.rules] == [0, 512]


def test_ipv6_rule_section_gives_ipv6_rules() -> None:
    text = DEFAULT_LISTING + "$ ip -6 rule\n0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x539 lookup 133\n"
    rules = parse_ip_rules(text).rules
    assert [x.family for x in rules] == [Family.IPV4] * 3 + [Family.IPV6] * 2


def test_ipv6_addresses_set_the_family() -> None:
    (rule,) = parse_ip_rules("ip rule add from fd00::/8 lookup 9 pref 9").rules
    assert rule.family == Family.IPV6


def test_listing_without_space_after_colon() -> None:
    (rule,) = parse_ip_rules("0:from all lookup local").rules
    assert (rule.priority, rule.table) == (0, 255)


def test_same_rule_added_twice_warns_file_exists() -> None:
    r = parse_ip_rules("ip rule add fwmark 1337 lookup 133\nip rule add fwmark 1337 lookup 133\n")
    assert len(r.rules) == 1
    assert any("File exists" in w.message for w in r.warnings)


def test_rule_delete_is_an_error_not_ignored() -> None:
    (err,) = parse_ip_rules("$ ip rule del fwmark 1337 lookup 133").errors
    assert "not replayed" in err.message


def test_l3mdev_rules_are_reported_as_unsupported() -> None:
    (err,) = parse_ip_rules("1000:\tfrom all lookup [l3mdev-table]").errors
    assert "l3mdev" in err.message


def test_goto_must_point_forward() -> None:
    (err,) = parse_ip_rules("500: from all goto 400").errors
    assert "goto" in err.message


def test_blank_lines_comments_and_trailing_spaces_are_fine() -> None:
    text = "\n# my pod\n\n0:\tfrom all lookup local   \n   \n; note\n32766:\tfrom all lookup main \t\n"
    r = parse_ip_rules(text)
    assert not r.errors and not r.warnings
    assert len(r.rules) == 2


def test_output_of_other_commands_is_skipped_with_one_warning() -> None:
    text = "$ ip addr\n1: lo: <LOOPBACK,UP>\n    inet 127.0.0.1/8 scope host lo\n$ ip rule\n0:\tfrom all lookup local\n"
    r = parse_ip_rules(text)
    assert not r.errors
    assert len(r.warnings) == 1 and "skipped" in r.warnings[0].message
    assert len(r.rules) == 1


def test_command_error_output_is_skipped_with_a_warning() -> None:
    r = parse_ip_rules("$ ip rule add fwmark 1 lookup 2 pref 10\nRTNETLINK answers: File exists\n")
    assert not r.errors and len(r.rules) == 1
    assert any("error output" in w.message for w in r.warnings)


def test_rules_keep_their_source_line() -> None:
    r = parse_ip_rules("\n\n32765:\tfrom all fwmark 0x539 lookup 133   \n", source="pod/ip-rule")
    ref = r.rules[0].ref
    assert ref is not None and (ref.source, ref.line, ref.text) == (
        "pod/ip-rule",
        3,
        "32765:\tfrom all fwmark 0x539 lookup 133",
    )
