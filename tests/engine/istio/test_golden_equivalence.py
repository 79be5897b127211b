"""Every Istio capture golden in the corpus is reproduced from its documented settings.

Compared as parsed models: for each (family, table, chain), the list of rules in canonical form, in order,
after the golden's `-I CHAIN N` insertions are applied.  The settings come from CASES.md, as data in
golden_cases.py.
"""

from __future__ import annotations

import pytest

from meshviz.engine.istio import CaptureSettings, generate

from .golden_cases import CNI_PLUGIN_DIR, GOLDEN_CASES, STALE_GOLDENS, GoldenCase, corpus_goldens
from .util import chain_rules, differences, golden_rules


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.id)
def test_generated_rules_equal_the_golden(case: GoldenCase) -> None:
    capture = generate(CaptureSettings.from_values(**case.settings), case.flavour)
    assert not capture.errors, [str(e) for e in capture.errors]
    expected = golden_rules(case.golden.read_text(), str(case.golden))
    diff = differences(expected, chain_rules(capture.rulesets))
    assert not diff, "\n".join(diff)


def test_every_golden_in_the_corpus_has_a_case() -> None:
    covered = {case.golden for case in GOLDEN_CASES}
    missing = [str(p) for p in corpus_goldens() if p not in covered]
    assert not missing
    assert len(covered) == len(GOLDEN_CASES) == 63


def test_the_stale_status_ports_golden_differs_only_in_its_documented_older_layout() -> None:
    """status-ports.txt.golden (SOURCES.md: stale since 2021, unused upstream) is an older layout.

    Against the CNI plugin's current output for the same pod (excludeInboundPorts=22), the only differences
    are the ones of that era: OUTPUT jumps only for TCP, no UDP exclusion of 15020, and the rules that turn
    the proxy's calls to itself into inbound traffic lack `-p tcp ! --dport 15008`.
    """
    assert "status-ports.txt.golden" in STALE_GOLDENS
    path = CNI_PLUGIN_DIR / "status-ports.txt.golden"
    settings = CaptureSettings.from_values(CaptureSettings.cni_plugin_defaults(), inbound_ports_exclude="22,15020")
    generated = chain_rules(generate(settings, "cni-plugin").rulesets)
    golden = golden_rules(path.read_text(), str(path))
    assert set(golden) == set(generated)
    changed = {key for key in golden if golden[key] != generated[key]}
    assert changed == {("ipv4", "nat", "OUTPUT"), ("ipv4", "nat", "ISTIO_OUTPUT")}
    assert golden["ipv4", "nat", "OUTPUT"] == ["-A OUTPUT -p tcp -j ISTIO_OUTPUT"]
    assert generated["ipv4", "nat", "OUTPUT"] == ["-A OUTPUT -j ISTIO_OUTPUT"]
    old = [r.replace("-p tcp ! --dport 15008 ", "") for r in generated["ipv4", "nat", "ISTIO_OUTPUT"]]
    old.remove("-A ISTIO_OUTPUT -p udp --dport 15020 -j RETURN")
    assert old == golden["ipv4", "nat", "ISTIO_OUTPUT"]
