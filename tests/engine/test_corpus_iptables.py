"""Every iptables file of the corpus (tests/fixtures/corpus, see its SOURCES.md) parses, with facts per file.

How the builder goldens are treated
-----------------------------------
`istio-iptables/builder/*.golden` are unit-test outputs of Istio's rule builder with placeholder
content: a table called `table`, and rules `-f foo -b bar` (`-f` is iptables' fragment flag, `foo` a
stray word, `-b` no option at all).  They are not valid iptables, and iptables itself refuses them.
They are parsed with `strict=False`, the lenient mode meant for exactly this: the unknown table and
every token that cannot be read become *warnings*, and the tokens are kept in place in a pseudo match
`Match(module="unparsed")`, which the simulator reports as UNSUPPORTED (it never guesses what the rule
does).  `strict=True`, the default used for user uploads, rejects the same files with errors - both
behaviours are asserted below.  Everything else in the corpus must parse strictly with zero errors.
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.model import AddrCriterion, Match, MatchOption, Target
from meshviz.engine.netfilter.parser import (
    FORMAT_COMMANDS,
    FORMAT_RESTORE,
    FORMAT_SAVE,
    IptablesParseResult,
    parse_iptables,
)
from meshviz.engine.netfilter.render import render_rule

from .iptables_util import CORPUS, chain, parse_ok, rules, ruleset

FILES = sorted(
    p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".golden", ".txt")
)
BUILDER = [f for f in FILES if f.startswith("istio-iptables/builder/")]
STRICT = [f for f in FILES if f not in BUILDER]

V4, V6 = Family.IPV4, Family.IPV6
# Cases run with EnableIPv6 (istio-iptables/CASES.md): their goldens hold an IPv4 and an IPv6 payload.
DUAL_STACK_CAPTURE = {"dns-uid-gid", "tproxy"}
RULE_LINE = re.compile(r"\s*(\[\d+:\d+\]\s*)?(\S*ip6?tables\S*\s+)?(-t \S+ )?-[AI] ")


def text_of(rel: str) -> str:
    return (CORPUS / rel).read_text()


def parse(rel: str) -> IptablesParseResult:
    return parse_iptables(text_of(rel), source=rel, strict=rel not in BUILDER)


def expected_format_and_families(rel: str) -> tuple[str, list[Family]]:
    name = rel.rsplit("/", 1)[-1]
    stem = name.split(".")[0]
    if rel.startswith("istio-iptables/builder/"):
        return (FORMAT_RESTORE if stem.endswith("-restore") else FORMAT_COMMANDS), [V4]
    if rel.startswith("istio-iptables/"):
        fmt = FORMAT_COMMANDS if "/legacy-1.23.0/" in rel else FORMAT_RESTORE
        dual = stem.startswith("ipv6-") or stem in DUAL_STACK_CAPTURE
        return fmt, [V4, V6] if dual else [V4]
    if rel.startswith("istio-cni/plugin/"):
        return FORMAT_RESTORE, [V4]
    if rel.startswith("istio-cni/"):
        return FORMAT_RESTORE, [V4, V6] if stem.endswith("_ipv6") else [V4]
    if rel.startswith("iptables-save/moby-bridge/"):
        return FORMAT_SAVE, [V6] if name.endswith(".ip6tables.txt") else [V4]
    if rel.endswith("kube-proxy-TestOverallIPTablesRules.txt"):
        return FORMAT_RESTORE, [V4]
    return FORMAT_SAVE, [V4]


def test_the_corpus_is_all_there():
    assert len(FILES) == 116
    assert len(BUILDER) == 14


@pytest.mark.parametrize("rel", STRICT)
def test_corpus_file_parses_strictly_without_errors(rel: str):
    r = parse(rel)
    assert not r.errors, "\n".join(str(e) for e in r.errors)


@pytest.mark.parametrize("rel", FILES)
def test_corpus_file_format_and_families(rel: str):
    r = parse(rel)
    fmt, families = expected_format_and_families(rel)
    assert (r.format, [rs.family for rs in r.rulesets]) == (fmt, families)


@pytest.mark.parametrize("rel", FILES)
def test_every_rule_line_becomes_one_rule_whose_source_ref_is_that_line(rel: str):
    text = text_of(rel)
    lines = text.split("\n")
    r = parse(rel)
    all_rules = [x for rs in r.rulesets for t in rs.tables for c in t.chains for x in c.rules]
    assert len(all_rules) == sum(1 for line in lines if RULE_LINE.match(line))
    for x in all_rules:
        assert x.ref is not None and x.ref.source == rel
        assert lines[x.ref.line - 1].rstrip("\r") == x.ref.text


@pytest.mark.parametrize("rel", [f for f in STRICT if "moby" not in f])
def test_only_expected_warnings(rel: str):
    r = parse(rel)
    assert r.warnings == ()


# ---- istio-iptables (restore goldens and their legacy command-line twins) ----


def test_tproxy_golden_has_both_families_and_the_tproxy_rule():
    r = parse_ok(text_of("istio-iptables/tproxy.golden"))
    assert [rs.family for rs in r.rulesets] == [V4, V6]
    for family, loopback in ((V4, "127.0.0.1/32"), (V6, "::1/128")):
        (rule,) = rules(r, "mangle", "ISTIO_TPROXY", family)
        assert rule.target == Target(
            "TPROXY", (MatchOption("tproxy-mark", ("1337/0xffffffff",)), MatchOption("on-port", ("15006",)))
        )
        assert rule.dst == AddrCriterion(ipaddress.ip_network(loopback), negated=True)
        assert rule.protocol == "tcp"


def test_tproxy_golden_dns_capture_uses_ct_zones_in_raw():
    r = parse_ok(text_of("istio-iptables/tproxy.golden"))
    zones = [x.target.options for x in rules(r, "raw", "ISTIO_OUTPUT_DNS") if x.target and x.target.name == "CT"]
    assert zones[:2] == [(MatchOption("zone", ("1",)),), (MatchOption("zone", ("2",)),)]


def test_tproxy_golden_redirects_dns_with_to_port_spelled_both_ways():
    r = parse_ok(text_of("istio-iptables/tproxy.golden"))
    dns = rules(r, "nat", "ISTIO_OUTPUT_DNS")
    assert [x.target for x in dns] == [Target("REDIRECT", (MatchOption("to-ports", ("15053",)),))] * 2
    assert dns[1].ref is not None and dns[1].ref.text.endswith("--to-port 15053")


@pytest.mark.parametrize("rel", ["istio-iptables/inbound-ports-tproxy.golden", "istio-cni/plugin/tproxy.txt.golden"])
def test_tproxy_inserts_land_at_the_top_of_istio_inbound(rel: str):
    inbound = rules(parse_ok(text_of(rel)), "mangle", "ISTIO_INBOUND")
    assert [render_rule(x) for x in inbound[:3]] == [
        "-A ISTIO_INBOUND -p tcp -m mark --mark 1337 -j RETURN",
        "-A ISTIO_INBOUND -s 127.0.0.6/32 -i lo -p tcp -j RETURN",
        "-A ISTIO_INBOUND -i lo -p tcp -m mark ! --mark 1338 -j RETURN",
    ]


def test_virt_interfaces_insert_at_prerouting_1():
    r = parse_ok(text_of("istio-iptables/ipv6-virt-interfaces.golden"))
    for family in (V4, V6):
        first = rules(r, "nat", "PREROUTING", family)[0]
        assert first.in_iface is not None and first.in_iface.name == "eth1"


def test_owner_group_names_are_kept_as_written():
    r = parse_ok(text_of("istio-iptables/outbound-owner-groups.golden"))
    groups = [m.options[0].values[0] for x in rules(r, "nat", "ISTIO_OUTPUT") for m in x.matches if m.module == "owner"]
    assert {"java", "202"} <= set(groups)


# Cases whose legacy (1.23.0) and current goldens differ only in nat OUTPUT's jump (`-p tcp` was dropped).
SAME_RULES_EXCEPT_OUTPUT_JUMP = [
    "basic-exclude-nic",
    "empty",
    "host-ipv4-loopback-cidr",
    "inbound-ports-include",
    "inbound-ports-tproxy",
    "inbound-ports-wildcard-tproxy",
    "inbound-ports-wildcard",
    "ipnets-with-kube-virt-interfaces",
    "ipnets",
    "ipv6-empty-inbound-ports",
    "ipv6-inbound-ports",
    "ipv6-ipnets",
    "ipv6-outbound-ports",
    "ipv6-uid-gid",
    "ipv6-virt-interfaces",
    "kube-virt-interfaces",
    "outbound-owner-groups-exclude",
    "outbound-owner-groups",
    "outbound-ports-include",
]


def rules_by_chain(rel: str) -> dict[tuple[Family, str, str], list[str]]:
    r = parse_ok(text_of(rel))
    return {
        (rs.family, t.name, c.name): [render_rule(x) for x in c.rules]
        for rs in r.rulesets
        for t in rs.tables
        for c in t.chains
    }


@pytest.mark.parametrize("case", SAME_RULES_EXCEPT_OUTPUT_JUMP)
def test_legacy_commands_and_current_restore_golden_give_equal_rules_per_chain(case: str):
    legacy = rules_by_chain(f"istio-iptables/legacy-1.23.0/{case}.golden")
    current = rules_by_chain(f"istio-iptables/{case}.golden")
    assert legacy.keys() == current.keys()
    differing = {k for k in current if legacy[k] != current[k]}
    assert differing == {k for k in current if k[1:] == ("nat", "OUTPUT")}
    for k in differing:
        assert [x.replace("-A OUTPUT -p tcp -j", "-A OUTPUT -j") for x in legacy[k]] == current[k]


def test_legacy_logging_golden_has_nflog_rules():
    r = parse_ok(text_of("istio-iptables/legacy-1.23.0/logging.golden"))
    nflog = [
        x.target
        for rs in r.rulesets
        for t in rs.tables
        for c in t.chains
        for x in c.rules
        if x.target and x.target.name == "NFLOG"
    ]
    assert (
        Target(
            "NFLOG",
            (
                MatchOption("nflog-prefix", ("InboundCapture",)),
                MatchOption("nflog-group", ("1337",)),
                MatchOption("nflog-size", ("20",)),
            ),
        )
        in nflog
    )


# ---- istio-cni ----


def test_ambient_golden_connmark_and_dns_ct_zone():
    r = parse_ok(text_of("istio-cni/default_ipv6.golden"))
    for family in (V4, V6):
        (save,) = rules(r, "mangle", "ISTIO_PRERT", family)
        assert save.target == Target("CONNMARK", (MatchOption("set-xmark", ("0x111/0xfff",)),))
        restore = rules(r, "mangle", "ISTIO_OUTPUT", family)[0]
        assert restore.target is not None and [o.name for o in restore.target.options] == [
            "restore-mark",
            "nfmask",
            "ctmask",
        ]
    probe = rules(r, "nat", "ISTIO_PRERT", V6)[0]
    assert probe.src == AddrCriterion(ipaddress.ip_network("e9ac:1e77:90ca:399f:4d6d:ece2:2f9b:3164/128"))


def test_hostprobe_golden_snats_probes_from_an_ipset():
    r = parse_ok(text_of("istio-cni/hostprobe_ipv6.golden"))
    (v6,) = rules(r, "nat", "ISTIO_POSTRT", V6)
    assert Match("set", (MatchOption("match-set", ("istio-inpod-probes-v6", "dst")),)) in v6.matches
    assert Match("owner", (MatchOption("socket-exists"),)) in v6.matches
    assert v6.target == Target("SNAT", (MatchOption("to-source", ("fd16:9254:7127:1337:ffff:ffff:ffff:ffff",)),))
    assert rules(r, "nat", "POSTROUTING", V4)[0].target == Target("ISTIO_POSTRT")


@pytest.mark.parametrize("rel", [f for f in FILES if f.startswith("istio-cni/plugin/")])
def test_cni_plugin_goldens_tables(rel: str):
    r = parse_ok(text_of(rel))
    tables = [t.name for t in ruleset(r).tables]
    stem = rel.rsplit("/", 1)[-1].split(".")[0]
    # TPROXY marks in mangle, DNS capture sets CT zones in raw, INVALID_DROP drops in mangle
    extra = {"tproxy": ["mangle", "nat"], "custom-uid-tproxy": ["mangle", "nat"], "dns": ["nat", "raw"]}
    assert tables == extra.get(stem, ["mangle", "nat"] if stem == "invalid-drop" else ["nat"])
    assert rules(r, "nat", "OUTPUT")[0].target == Target("ISTIO_OUTPUT")


# ---- iptables-save captures ----


def test_kube_proxy_2015_save_keeps_chain_counters():
    rel = "iptables-save/kube-proxy/kube-proxy-2015-userspace-portals-iptables-v1.4.21.txt"
    r = parse_ok(text_of(rel))
    rs = ruleset(r)
    assert chain(rs, "nat", "PREROUTING").counters == (2, 138)
    assert chain(rs, "filter", "INPUT").counters == (17514, 83115836)
    assert chain(rs, "filter", "OUTPUT").counters == (8909, 688225)
    assert chain(rs, "nat", "DOCKER").counters == (0, 0)
    recent = rules(r, "nat", "KUBE-SVC-1111111111111111")[0]
    assert recent.target == Target("DNAT", (MatchOption("to-destination", ("10.246.1.2:53",)),))
    assert [m.module for m in recent.matches] == ["comment", "recent"]


def test_kube_proxy_overall_payload_statistic_recent_and_nfacct():
    r = parse_ok(text_of("iptables-save/kube-proxy/kube-proxy-TestOverallIPTablesRules.txt"))
    svc4 = rules(r, "nat", "KUBE-SVC-4SW47YFZTEDKD3PK")
    assert (
        Match("statistic", (MatchOption("mode", ("random",)), MatchOption("probability", ("0.5000000000",))))
        in svc4[1].matches
    )
    svc5 = rules(r, "nat", "KUBE-SVC-NUKIZ6OKUXPJNT4C")
    assert [o.name for o in svc5[1].matches[1].options] == ["name", "rcheck", "seconds", "reap"]
    fwd = rules(r, "filter", "KUBE-FORWARD")[0]
    assert Match("nfacct", (MatchOption("nfacct-name", ("ct_state_invalid_dropped_pkts",)),)) in fwd.matches
    assert rules(r, "nat", "KUBE-MARK-MASQ")[0].target == Target("MARK", (MatchOption("or-mark", ("0x4000",)),))


def test_ambient_pod_capture_tproxy_with_on_ip():
    r = parse_ok(text_of("iptables-save/istio/istio-io-docs-ambient-inpod-pod-netns.txt"))
    tproxy = [x for x in rules(r, "mangle", "ISTIO_PRERT") if x.target and x.target.name == "TPROXY"]
    assert [x.target.option("on-port").values for x in tproxy if x.target and x.target.option("on-port")] == [
        ("15008",),
        ("15006",),
    ]
    assert all(x.target and x.target.option("on-ip") == MatchOption("on-ip", ("0.0.0.0",)) for x in tproxy)
    assert chain(ruleset(r), "mangle", "INPUT").counters == (23753, 267657744)


@pytest.mark.parametrize("rel", [f for f in FILES if "moby-bridge" in f])
def test_moby_bridge_captures_have_raw_filter_nat(rel: str):
    r = parse_ok(text_of(rel))
    rs = r.rulesets[0]
    assert [t.name for t in rs.tables] == ["raw", "filter", "nat"]
    assert all(c.counters == (0, 0) for t in rs.tables for c in t.chains)
    for x in rules(r, "nat", "DOCKER", rs.family):
        if x.target and x.target.name == "DNAT":
            (to,) = x.target.options
            assert to.values[0].endswith(":80")
            if rs.family == V6:
                assert to.values[0].startswith("[")


# ---- builder goldens: lenient mode (see the module docstring) ----


@pytest.mark.parametrize("rel", BUILDER)
def test_builder_golden_parses_leniently_with_warnings_and_unsupported_rules(rel: str):
    r = parse_iptables(text_of(rel), source=rel, strict=False)
    assert not r.errors
    assert any("unknown table `table'" in w.message for w in r.warnings)
    all_rules = [x for rs in r.rulesets for t in rs.tables for c in t.chains for x in c.rules]
    assert all_rules
    for x in all_rules:
        assert x.fragment is True
        unparsed = [m for m in x.matches if m.module == "unparsed"]
        assert unparsed, "placeholder tokens must be kept as an unparsed match"
        words = [v for m in unparsed for o in m.options for v in o.values]
        assert words[0] in ("foo", "fu") and words[1] == "-b" and words[2] in ("bar", "baz", "baaz")
        assert render_rule(x).endswith(" -f " + " ".join(words))


@pytest.mark.parametrize("rel", BUILDER)
def test_builder_golden_is_refused_in_strict_mode(rel: str):
    r = parse_iptables(text_of(rel), source=rel)
    assert r.errors
    assert {e.message.split("`")[0] for e in r.errors} <= {"unknown table ", "Bad argument "}


def test_builder_insert_orders_follow_insert_positions():
    r = parse_iptables(text_of("istio-iptables/builder/insert-multi-restore.golden"), strict=False)
    words = [x.matches[0].options[-1].values[0] for x in rules(r, "table", "chain")]
    assert words == ["bar", "baaz", "baz"]


def test_builder_insert_past_the_end_is_appended_with_a_warning():
    r = parse_iptables(text_of("istio-iptables/builder/insert-single.golden"), strict=False)
    assert any(
        "Index of insertion too big" in w.message and w.message.endswith("appended at the end") for w in r.warnings
    )
    assert len(rules(r, "table", "chain")) == 1


def test_builder_v6_golden_as_ip6tables_output_keeps_minus_f_unparsed():
    r = parse_iptables(
        text_of("istio-iptables/builder/multi-rules-new-chain-v6-restore.golden"), strict=False, family=V6
    )
    assert not r.errors
    for x in rules(r, "table", "chain", V6):
        assert x.fragment is None  # ip6tables has no -f
        assert x.matches[0].options[0].values == ("-f",)
