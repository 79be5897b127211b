"""The fix's repairs in nft syntax: each rule is written exactly as Istio's nftables goldens write it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.fix.repairs import candidate_repairs
from meshviz.engine.istio.nft_builder import NftChain, NftOperation, NftRule, NftState, NftTable
from meshviz.engine.istio.nft_commands import (
    NFT_REPAIRS,
    NftRepair,
    connmark_restore,
    connmark_save,
    divert_rules,
    inbound_mark_return,
    inbound_passthrough_return,
    nft_commands,
    nft_fragment,
    nft_repair_for,
    outbound_mark,
    tproxy_rule,
)

from ..fix.helpers import TPROXY_RULES, tproxy_evidence
from .nft_golden_cases import CAPTURE_DIR

IPTABLES_GOLDENS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "istio-iptables"
_RULE = re.compile(r"^(?:add|insert) rule inet (\S+) (\S+) (?:index \d+ )?(.*)$")


def _golden_rules(name: str) -> set[tuple[str, str, str]]:
    """(table, chain, rule) of every add/insert rule line of a capture golden."""
    out = set()
    for line in (CAPTURE_DIR / name).read_text().splitlines():
        m = _RULE.match(line)
        if m:
            out.add((m[1], m[2], m[3]))
    return out


TPROXY_IPV6 = _golden_rules("tproxy.golden")  # TPROXY, IPv4 + IPv6, uid = gid = 1337, mark 1337
TPROXY_INBOUND = _golden_rules("inbound-ports-wildcard-tproxy.golden")  # TPROXY, IPv4 only


@pytest.mark.parametrize(
    "repair",
    [
        connmark_save(1337),
        connmark_restore(1337),
        inbound_mark_return(1337),
        inbound_passthrough_return(Family.IPV4),
        inbound_passthrough_return(Family.IPV6),
        tproxy_rule(1337, 15006, Family.IPV4),
        tproxy_rule(1337, 15006, Family.IPV6),
        *divert_rules(1337),
        outbound_mark("1337", "skuid", Family.IPV4),
        outbound_mark("1337", "skgid", Family.IPV6),
    ],
    ids=lambda r: f"{r.key}:{r.rule}",
)
def test_repair_rule_is_the_line_istios_tproxy_golden_has(repair: NftRepair) -> None:
    assert (repair.table, repair.chain, repair.rule) in TPROXY_IPV6


def test_repairs_follow_the_pods_mark_port_and_loopback() -> None:
    assert (
        "istio-proxy-mangle",
        "istio-tproxy",
        "meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 meta mark set 1337 counter accept",
    ) in TPROXY_INBOUND
    custom = tproxy_rule(4242, 16006, Family.IPV4, loopback="127.0.0.1/8")
    assert (
        custom.rule == "meta l4proto tcp ip daddr != 127.0.0.1/8 tproxy ip to :16006 meta mark set 4242 counter accept"
    )
    assert connmark_save(4242).rule == "meta l4proto tcp mark 4242 counter ct mark set mark"
    assert connmark_restore(4242).rule == "meta l4proto tcp ct mark 4242 counter meta mark set ct mark"


def test_commands_add_or_insert_at_the_head() -> None:
    assert nft_commands([connmark_save(1337), inbound_mark_return(1337)]) == (
        "nft add rule inet istio-proxy-mangle prerouting meta l4proto tcp mark 1337 counter ct mark set mark",
        "nft insert rule inet istio-proxy-mangle istio-inbound meta l4proto tcp mark 1337 counter return",
    )


def test_fragment_declares_table_and_chains_as_istio_does_then_the_rules() -> None:
    fragment = nft_fragment([connmark_restore(1337), inbound_mark_return(1337)])
    assert fragment == (
        "add table inet istio-proxy-mangle\n"
        "add chain inet istio-proxy-mangle output { type route hook output priority -150 ; }\n"
        "add chain inet istio-proxy-mangle istio-inbound\n"
        "add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 1337 counter meta mark set ct mark\n"
        "insert rule inet istio-proxy-mangle istio-inbound meta l4proto tcp mark 1337 counter return\n"
    )


def test_fragment_on_a_pod_with_the_chain_puts_the_return_first() -> None:
    mangle = "istio-proxy-mangle"
    pod = NftState().apply(
        [
            NftOperation("add", NftTable(mangle)),
            NftOperation("add", NftChain(mangle, "istio-inbound")),
            NftOperation("add", NftRule(mangle, "istio-inbound", "meta l4proto tcp counter jump istio-tproxy")),
        ]
    )
    repair = inbound_mark_return(1337)
    pod.apply([NftOperation("add", NftTable(mangle)), NftOperation("add", NftChain(mangle, "istio-inbound"))])
    pod.apply([repair.operation()])
    assert pod.errors == []
    assert pod.rules(mangle, "istio-inbound") == (repair.rule, "meta l4proto tcp counter jump istio-tproxy")


def test_fix_iptables_repairs_each_have_an_nft_form_from_the_same_istio_rule() -> None:
    """For a TPROXY pod missing the CONNMARK and RETURN rules, fix.py proposes iptables repairs; each has an nft
    twin, and the iptables rule and the nft rule are the same line of Istio's iptables and nftables goldens."""
    dropped = ("--save-mark", "--restore-mark", "-I ISTIO_INBOUND 1 ")
    rules = "\n".join(line for line in TPROXY_RULES.splitlines() if not any(d in line for d in dropped)) + "\n"
    repairs, _ = candidate_repairs(tproxy_evidence(iptables=rules))
    firewall = [r for r in repairs if any(a.kind == "iptables" for a in r.artifacts)]
    assert {r.key for r in firewall} == set(NFT_REPAIRS)
    iptables_golden = (IPTABLES_GOLDENS / "inbound-ports-wildcard-tproxy.golden").read_text().splitlines()
    for r in firewall:
        command = next(a.content for a in r.artifacts if a.kind == "iptables")
        line = command.split(" ", 3)[3]  # "iptables -t mangle <op ...>"
        assert line in iptables_golden, r.key
        twin = nft_repair_for(r.key, 1337)
        assert twin is not None and (twin.table, twin.chain, twin.rule) in TPROXY_INBOUND, r.key


def test_repairs_that_are_not_firewall_rules_have_no_nft_form() -> None:
    assert nft_repair_for("ip-rule-fwmark", 1337) is None
    assert nft_repair_for("envoyfilter-original-src", 1337) is None
