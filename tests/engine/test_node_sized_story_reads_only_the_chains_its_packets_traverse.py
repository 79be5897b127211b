"""A story through a node-sized, fast-parsed ruleset builds only the chains it needs: the compiled ruleset indexes a
chain the first time a packet reaches it, and the pod's profile reads Istio's chains by name, so kube-proxy's
thousands of service chains stay unbuilt (the verdict is the one an eagerly built ruleset gives)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from meshviz.engine.netfilter import parser
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.netfilter.walk import CompiledRuleset
from meshviz.engine.pipeline.pod import load_pod, run_story

FIX = Path(__file__).resolve().parents[1] / "fixtures"
GEN = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "gen_kube_proxy_rules.py"
ISTIO = (FIX / "corpus" / "istio-iptables" / "tproxy.golden").read_text()


def _kube(services: int) -> str:
    if GEN.exists():
        spec = importlib.util.spec_from_file_location("gen_kube_proxy_rules", GEN)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return str(mod.generate(services, 3, 7))
    # without ../shared (a clone elsewhere): the same shape, a service chain and an endpoint chain per service
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]"]
    lines += [f":KUBE-SVC-{n:04d} - [0:0]" for n in range(services)]
    lines += [f":KUBE-SEP-{n:04d} - [0:0]" for n in range(services)]
    lines += ["-A PREROUTING -j KUBE-SERVICES", "-A OUTPUT -j KUBE-SERVICES"]
    lines += [
        f"-A KUBE-SERVICES -d 10.96.{n // 250}.{n % 250 + 1}/32 -p tcp --dport 80 -j KUBE-SVC-{n:04d}"
        for n in range(services)
    ]
    lines += [f"-A KUBE-SVC-{n:04d} -j KUBE-SEP-{n:04d}" for n in range(services)]
    lines += [
        f"-A KUBE-SEP-{n:04d} -p tcp -j DNAT --to-destination 10.244.0.{n % 250 + 1}:8080" for n in range(services)
    ]
    return "\n".join([*lines, "COMMIT", ""])


def _built(rs_tables: object) -> tuple[int, int]:
    """(chains whose rules are built, chains in all) of a parse's rulesets."""
    built = total = 0
    for rs in rs_tables:  # type: ignore[attr-defined]
        for t in rs.tables:
            for c in t.chains:
                total += 1
                built += "_lazy" not in c.__dict__
    return built, total


def _merged(services: int) -> str:
    """Istio's TPROXY rules (written as iptables-save prints them) with kube-proxy's nat chains and rules in the same
    nat table: one node-sized pod's iptables-save."""
    istio = render_ruleset(parse_iptables(ISTIO).rulesets[0])
    kube = _kube(services).split("*nat\n", 1)[1].split("COMMIT", 1)[0].splitlines()
    decl = [ln for ln in kube if ln.startswith(":KUBE")]
    rules = [ln for ln in kube if ln.startswith("-A")]
    out: list[str] = []
    table = ""
    for ln in istio.splitlines():
        if ln.startswith("*"):
            table = ln[1:].strip()
        if ln == "COMMIT" and table == "nat":
            out += rules
        out.append(ln)
        if ln.startswith("*") and table == "nat":
            out += decl
    return "\n".join(out) + "\n"


def test_a_compiled_ruleset_indexes_no_chain_until_a_packet_reaches_it() -> None:
    r = parse_iptables(_kube(300))
    crs = CompiledRuleset(r.rulesets[0])
    assert crs.chains == {}
    assert crs.chain("nat", "KUBE-SERVICES") is not None
    assert list(crs.chains) == [("nat", "KUBE-SERVICES")]
    assert crs.chain("nat", "NO-SUCH-CHAIN") is None


def test_an_inbound_story_on_a_node_sized_pod_builds_few_of_its_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _merged(400)
    pod = load_pod(iptables=text, pod_ip="10.0.0.10")
    rulesets = pod.snapshot.rulesets
    before_built, total = _built(rulesets)
    assert total > 800 and before_built < 20, "the fast path left the chains unbuilt"
    lazy = run_story(iptables=text, pod_ip="10.0.0.10", direction="inbound", client="10.1.1.1:40000", port=8080)
    built, _ = _built(rulesets)
    assert built < total // 4, f"{built} of {total} chains were built for one story"
    # the same story on an eagerly built ruleset (the full parser, a text the cache has not seen) gives the same
    # verdict
    monkeypatch.setattr(parser, "_USE_FAST", False)
    eager_text = text + "# eager\n"
    eager = run_story(iptables=eager_text, pod_ip="10.0.0.10", direction="inbound", client="10.1.1.1:40000", port=8080)
    assert _built(load_pod(iptables=eager_text, pod_ip="10.0.0.10").snapshot.rulesets)[0] == total
    assert lazy.story is not None and eager.story is not None
    assert lazy.story.verdict.to_dict() == eager.story.verdict.to_dict()
