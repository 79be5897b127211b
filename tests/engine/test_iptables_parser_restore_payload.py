"""iptables-restore payloads: Istio's dry-run goldens, kube-proxy payloads, `-N`/`-I`/`-D` lines."""

from __future__ import annotations

import ipaddress
import random

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter import parser as iptables_parser
from meshviz.engine.netfilter.model import AddrCriterion, Match, MatchOption
from meshviz.engine.netfilter.parser import FORMAT_RESTORE, parse_iptables

from .iptables_util import CORPUS, chain, parse_ok, rules, ruleset


def test_space_after_star_and_dash_n_declarations_make_a_restore_payload():
    r = parse_ok(
        "iptables-save\n* nat\n-N ISTIO_REDIRECT\n-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n"
    )
    assert r.format == FORMAT_RESTORE
    c = chain(ruleset(r), "nat", "ISTIO_REDIRECT")
    assert c.ref is not None and c.ref.text == "-N ISTIO_REDIRECT" and c.ref.line == 3


def test_undeclared_builtin_chains_exist_with_policy_accept_and_no_source_ref():
    r = parse_ok("* mangle\n-A PREROUTING -j ACCEPT\nCOMMIT\n")
    t = ruleset(r).table("mangle")
    assert t is not None
    assert [c.name for c in t.chains] == ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
    for c in t.chains:
        assert c.builtin and c.policy == "ACCEPT" and c.ref is None and c.counters is None


def test_insert_with_position_lands_at_that_1_based_position():
    text = "* filter\n-N C\n-A C -j ACCEPT\n-A C -j DROP\n-I C 2 -j RETURN\n-I C 4 -j LOG\nCOMMIT\n"
    names = [x.target.name for x in rules(parse_ok(text), "filter", "C") if x.target]
    assert names == ["ACCEPT", "RETURN", "DROP", "LOG"]


def test_insert_without_position_goes_to_the_top():
    text = "* filter\n-N C\n-A C -j ACCEPT\n-I C -j DROP\nCOMMIT\n"
    names = [x.target.name for x in rules(parse_ok(text), "filter", "C") if x.target]
    assert names == ["DROP", "ACCEPT"]


def test_tproxy_golden_inserts_1_2_3_land_at_the_top_in_order():
    r = parse_ok((CORPUS / "istio-iptables" / "tproxy.golden").read_text())
    inbound = rules(r, "mangle", "ISTIO_INBOUND")
    assert [x.ref.text for x in inbound[:3] if x.ref] == [
        "-I ISTIO_INBOUND 1 -p tcp -m mark --mark 1337 -j RETURN",
        "-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN",
        "-I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark 1338 -j RETURN",
    ]
    assert [x.target.name for x in inbound[3:] if x.target] == ["ISTIO_DIVERT", "ISTIO_TPROXY"]


def test_second_appearance_of_a_table_starts_the_ipv6_payload():
    text = (
        "iptables-save\nip6tables-save\n"
        "* nat\n-A OUTPUT -d 127.0.0.1/32 -j RETURN\nCOMMIT\n"
        "* nat\n-A OUTPUT -d ::1/128 -j RETURN\nCOMMIT\n"
        "iptables-save\nip6tables-save\n"
    )
    r = parse_ok(text)
    assert [rs.family for rs in r.rulesets] == [Family.IPV4, Family.IPV6]
    assert rules(r, "nat", "OUTPUT", Family.IPV6)[0].dst == AddrCriterion(ipaddress.ip_network("::1/128"))
    assert not r.warnings


def test_payload_without_addresses_after_an_ipv4_payload_is_ipv6_with_a_warning():
    text = "* nat\n-A OUTPUT -d 127.0.0.1/32 -j RETURN\nCOMMIT\n* nat\n-A OUTPUT -p tcp -j RETURN\nCOMMIT\n"
    r = parse_iptables(text)
    assert not r.errors
    assert [rs.family for rs in r.rulesets] == [Family.IPV4, Family.IPV6]
    (w,) = r.warnings
    assert w.line == 4
    assert w.message == (
        "the payload starting on line 4 has no address or family-specific option;"
        " taken as IPv6 because it follows an IPv4 payload"
    )


def test_payload_without_addresses_before_an_ipv6_payload_is_ipv4():
    text = "* raw\n-A OUTPUT -j ACCEPT\nCOMMIT\n* raw\n-A OUTPUT -d ::1 -j ACCEPT\nCOMMIT\n"
    r = parse_iptables(text)
    assert [rs.family for rs in r.rulesets] == [Family.IPV4, Family.IPV6]
    assert "comes before an IPv6 payload" in r.warnings[0].message


def test_two_payloads_without_any_address_are_ipv4_then_ipv6():
    text = "* raw\n-A OUTPUT -j ACCEPT\nCOMMIT\n* raw\n-A OUTPUT -j ACCEPT\nCOMMIT\n"
    r = parse_iptables(text)
    assert [rs.family for rs in r.rulesets] == [Family.IPV4, Family.IPV6]
    assert len(r.warnings) == 2


def test_family_specific_match_decides_a_payload_without_addresses():
    text = "* filter\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\nCOMMIT\n"
    r = parse_ok(text)
    assert [rs.family for rs in r.rulesets] == [Family.IPV6]


def test_ip6tables_restore_marker_names_the_family_of_the_next_payload():
    r = parse_ok("ip6tables-restore --noflush\n* filter\n-A INPUT -j ACCEPT\nCOMMIT\n")
    assert [rs.family for rs in r.rulesets] == [Family.IPV6]


def test_family_argument_forces_the_family():
    r = parse_ok("* filter\n-A INPUT -j ACCEPT\nCOMMIT\n", family=Family.IPV6)
    assert [rs.family for rs in r.rulesets] == [Family.IPV6]


def test_same_family_twice_is_merged_with_a_warning():
    text = "* nat\n-A OUTPUT -d 10.0.0.1 -j RETURN\nCOMMIT\n* nat\n-A OUTPUT -d 10.0.0.2 -j RETURN\nCOMMIT\n"
    r = parse_iptables(text)
    assert not r.errors
    assert [rs.family for rs in r.rulesets] == [Family.IPV4]
    assert len(rules(r, "nat", "OUTPUT")) == 2
    (w,) = r.warnings
    assert w.line == 4 and "second IPv4 payload" in w.message


def test_delete_by_spec_matches_implicit_and_explicit_protocol_match_alike():
    text = "* filter\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\n-A INPUT -j DROP\n-D INPUT -p tcp --dport 80 -j ACCEPT\nCOMMIT\n"
    names = [x.target.name for x in rules(parse_ok(text), "filter", "INPUT") if x.target]
    assert names == ["DROP"]


def test_delete_by_index_removes_that_rule():
    text = "* filter\n-A INPUT -j ACCEPT\n-A INPUT -j DROP\n-D INPUT 1\nCOMMIT\n"
    names = [x.target.name for x in rules(parse_ok(text), "filter", "INPUT") if x.target]
    assert names == ["DROP"]


def test_comma_list_in_source_and_destination_expands_like_iptables_with_one_source_ref():
    r = parse_ok("* filter\n-A INPUT -s 10.0.0.1,10.0.0.2 -d 10.1.0.0/16,10.2.0.0/16 -j ACCEPT\nCOMMIT\n")
    rs = rules(r, "filter", "INPUT")
    pairs = [(str(x.src.network), str(x.dst.network)) for x in rs if x.src and x.dst]
    assert pairs == [
        ("10.0.0.1/32", "10.1.0.0/16"),
        ("10.0.0.1/32", "10.2.0.0/16"),
        ("10.0.0.2/32", "10.1.0.0/16"),
        ("10.0.0.2/32", "10.2.0.0/16"),
    ]
    assert len({id(x.ref) for x in rs}) == 1


def test_insert_of_a_comma_list_puts_the_last_combination_first():
    r = parse_ok("* filter\n-A INPUT -j DROP\n-I INPUT 1 -s 1.1.1.1,2.2.2.2 -j ACCEPT\nCOMMIT\n")
    srcs = [str(x.src.network) if x.src else None for x in rules(r, "filter", "INPUT")]
    assert srcs == ["2.2.2.2/32", "1.1.1.1/32", None]


def test_kube_proxy_payload_keeps_a_rule_without_target_and_match_before_protocol():
    r = parse_ok((CORPUS / "iptables-save" / "kube-proxy" / "kube-proxy-TestOverallIPTablesRules.txt").read_text())
    assert r.format == FORMAT_RESTORE
    fw = rules(r, "nat", "KUBE-FW-NUKIZ6OKUXPJNT4C")
    assert fw[-1].target is None
    assert fw[-1].comment() == "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
    first = rules(r, "filter", "KUBE-NODEPORTS")[0]
    assert first.protocol == "tcp"
    assert first.matches[1] == Match("tcp", (MatchOption("dport", ("30000",)),))


def test_restore_lines_may_be_indented():
    r = parse_ok("* filter\n   -A INPUT -j ACCEPT\nCOMMIT\n")
    assert len(rules(r, "filter", "INPUT")) == 1


def test_zero_flush_and_policy_lines_inside_a_payload():
    text = "* filter\n-A INPUT -j ACCEPT\n-P INPUT DROP\n-F INPUT\n-Z\nCOMMIT\n"
    r = parse_iptables(text)
    assert not r.errors
    c = chain(ruleset(r), "filter", "INPUT")
    assert c.policy == "DROP" and c.rules == ()
    (w,) = r.warnings
    assert w.line == 5 and "-Z zeroes counters" in w.message


# --------------------------------------------------------------------------
# The shape memo (parse each distinct line shape once) must never change a result.
# --------------------------------------------------------------------------


def _kube_like(services: int, seed: int) -> str:
    rnd = random.Random(seed)
    out = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"]
    body = ["-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"]
    for s in range(services):
        svc = f"KUBE-SVC-{s:04d}"
        sep = f"KUBE-SEP-{s:04d}"
        out += [f":{svc} - [0:0]", f":{sep} - [0:0]"]
        vip = f"172.16.{s // 250}.{s % 250 + 1}"
        ep = f"10.0.{s // 250}.{s % 250 + 1}"
        body += [
            f'-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "ns/svc{s}:http cluster IP" -m tcp --dport 80 -j {svc}',
            f"-A {svc} ! -s 10.0.0.0/8 -d {vip}/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ",
            f"-A {svc} -m statistic --mode random --probability {rnd.random():.5f} -j {sep}",
            f"-A {sep} -s {ep}/32 -j KUBE-MARK-MASQ",
            f"-A {sep} -p tcp -m tcp -j DNAT --to-destination {ep}:8080",
        ]
    return "\n".join([*out, *body, "COMMIT", ""])


def _mutate(text: str, seed: int) -> str:
    """Swap values for odd ones in some lines: bad addresses, unknown chains, `!` values, targets."""
    rnd = random.Random(seed)
    odd = ["10.0.0.300", "::1", "NOPE", "!", "ACCEPT", "LOG", "99999", "-j", "--dport", "0x1/0x1/2", '"x y"', "nan"]
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if line.startswith("-A") and rnd.random() < 0.15:
            toks = line.split(" ")
            toks[rnd.randrange(1, len(toks))] = rnd.choice(odd)
            lines[k] = " ".join(toks)
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(6))
def test_shape_memo_gives_exactly_the_full_parsers_result(monkeypatch: pytest.MonkeyPatch, seed: int):
    text = _mutate(_kube_like(60, seed), seed)
    with_memo = parse_iptables(text)
    monkeypatch.setattr(iptables_parser, "_USE_PLANS", False)
    without = parse_iptables(text)
    assert with_memo == without
    assert with_memo.errors  # the mutations did produce errors, and they are the same


def test_shape_memo_gives_exactly_the_full_parsers_result_on_every_corpus_file(monkeypatch: pytest.MonkeyPatch):
    texts = [
        p.read_text() for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.name not in ("SOURCES.md", "CASES.md")
    ]
    with_memo = [parse_iptables(t, strict=False) for t in texts]
    monkeypatch.setattr(iptables_parser, "_USE_PLANS", False)
    assert with_memo == [parse_iptables(t, strict=False) for t in texts]
