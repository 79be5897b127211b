"""structure_dot draws every chain of the ruleset as a node with an id, and every jump/goto as an edge."""

from __future__ import annotations

import re

import pytest

from meshviz.engine.explorer.structure import HOOK_TABLES, node_id, structure_dot
from meshviz.engine.sim.snapshot import Snapshot

from .helpers import EXAMPLE_NAMES, STRICT_CORPUS, corpus, envoy, evidence, snapshot

ISTIO = [f for f in STRICT_CORPUS if f.startswith(("istio-iptables/", "istio-cni/", "iptables-save/istio/"))]


def _check(snap: Snapshot, dot: str) -> None:
    rs = snap.rulesets[0]
    ids = dict(re.findall(r'^\s+(n\d+) \[id="([^"]+)"', dot, re.M))
    by_id = {v: k for k, v in ids.items()}
    for table in rs.tables:
        for chain in table.chains:
            cid = node_id("chain", table.name, chain.name)
            assert cid in by_id, f"{cid} missing"
            policy = f"policy {chain.policy}" if chain.policy else "user chain"
            assert policy in dot
            for i, rule in enumerate(chain.rules, 1):
                assert f'ID="{node_id("rule", table.name, chain.name, i)}"' in dot
                t = rule.target
                if t is not None and table.chain(t.name) is not None:
                    edge = f"{by_id[cid]}:r{i}:e -> {by_id[node_id('chain', table.name, t.name)]} [label=<{'goto' if t.goto else 'jump'} #{i}>"
                    assert edge in dot, edge


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples(name: str) -> None:
    ev = evidence(name)
    snap = snapshot(ev)
    _check(snap, structure_dot(snap, envoy(ev)))


@pytest.mark.parametrize("rel", ISTIO)
def test_istio_goldens(rel: str) -> None:
    r = corpus(rel)
    snap = Snapshot(rulesets=r.rulesets[:1])
    dot = structure_dot(snap, None)
    _check(snap, dot)
    for hook, _ in HOOK_TABLES:
        assert f'id="{node_id("hook", hook)}"' in dot


def test_hooks_are_in_kernel_order_with_tables_by_priority() -> None:
    snap = snapshot(evidence(EXAMPLE_NAMES[0]))
    dot = structure_dot(snap, None)
    positions = [dot.index(f"subgraph cluster_hook_{hook} ") for hook, _ in HOOK_TABLES]
    assert positions == sorted(positions)
    assert [h for h, _ in HOOK_TABLES] == ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
    assert dict(HOOK_TABLES)["OUTPUT"] == ("raw", "mangle", "nat", "filter", "security")
