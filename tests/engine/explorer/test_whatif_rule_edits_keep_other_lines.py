"""Insert, replace and delete on real rule files of every format give exactly the expected chain and leave every
other line of the text byte-identical (iptables-save, restore payloads with -I lines, one command per line)."""

from __future__ import annotations

import difflib
import ipaddress

import pytest

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_rule
from meshviz.engine.pipeline.evidence import Evidence

from .helpers import CORPUS, EXAMPLE_NAMES, STRICT_CORPUS, corpus, evidence

FILES = STRICT_CORPUS  # every format: iptables-save, restore payloads with -I lines, one command per line


def _chains(text: str) -> dict[tuple[str, str, str], list[str]]:
    r = parse_iptables(text)
    assert not r.errors, r.errors[:3]
    return {
        (str(rs.family), t.name, c.name): [render_rule(x) for x in c.rules]
        for rs in r.rulesets
        for t in rs.tables
        for c in t.chains
    }


def _cases(ev: Evidence) -> list[tuple[Edit, str, str, str, list[str]]]:
    fam = "ipv6" if ipaddress.ip_address(ev.pod_ip).version == 6 else "ipv4"
    before = _chains(ev.iptables)
    out = []
    for (f, table, chain), rules in before.items():
        if f != fam or not rules or table not in ("nat", "filter", "mangle"):
            continue
        body = "-p tcp --dport 4242 -j RETURN"
        new = f"-A {chain} {body}"
        for i in sorted({1, len(rules), len(rules) // 2 + 1}):
            exp = list(rules)
            exp.insert(i - 1, new)
            out.append((Edit(op="insert", table=table, chain=chain, index=i, rule=body), table, chain, fam, exp))
            exp = list(rules)
            exp[i - 1] = new
            out.append((Edit(op="replace", table=table, chain=chain, index=i, rule=new), table, chain, fam, exp))
            exp = list(rules)
            del exp[i - 1]
            out.append((Edit(op="delete", table=table, chain=chain, index=i), table, chain, fam, exp))
        exp = [*rules, new]
        out.append(
            (Edit(op="insert", table=table, chain=chain, index=len(rules) + 1, rule=body), table, chain, fam, exp)
        )
    return out


def _check(ev: Evidence) -> int:
    before = _chains(ev.iptables)
    n = 0
    for edit, table, chain, fam, expected in _cases(ev):
        result = apply_edits(ev, [edit])
        assert result.ok, (edit, result.errors)
        after = _chains(result.evidence.iptables)
        assert after[(fam, table, chain)] == expected, edit
        assert {k: v for k, v in after.items() if k != (fam, table, chain)} == {
            k: v for k, v in before.items() if k != (fam, table, chain)
        }
        old, new = ev.iptables.split("\n"), result.evidence.iptables.split("\n")
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if op != "equal":
                assert all(f" {chain} " in line for line in old[i1:i2] + new[j1:j2]), (edit, old[i1:i2], new[j1:j2])
        n += 1
    return n


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples(name: str) -> None:
    assert _check(evidence(name))


@pytest.mark.parametrize("rel", FILES)
def test_corpus(rel: str) -> None:
    r = corpus(rel)
    fam = r.rulesets[0].family if r.rulesets else None
    if fam is None or r.rulesets[0].rule_count() == 0:
        pytest.skip("no rules")
    pod_ip = "10.0.0.10" if str(fam) == "ipv4" else "fd00::10"
    ev = Evidence(iptables=(CORPUS / rel).read_text(), pod_ip=pod_ip)
    assert _check(ev) > 0 or not any(
        t.name in ("nat", "filter", "mangle") and c.rules for t in r.rulesets[0].tables for c in t.chains
    )
