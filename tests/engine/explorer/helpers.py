"""Inputs for the explorer tests: the bundled examples as Evidence, and the corpus goldens."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from meshviz.analyses.examples import examples, get
from meshviz.engine.envoy.model import EnvoyConfig
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.explorer.whatif import default_connections, retrace, stored
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.render.dot import DOT_BINARY
from meshviz.engine.sim.snapshot import Snapshot

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
EXAMPLE_NAMES = [e.name for e in examples()]
REDIRECT = "redirect-app-sees-127.0.0.6"
TPROXY_OK = "tproxy-original-src-app-sees-client"
NO_POLICY_ROUTE = "tproxy-missing-policy-route-503-uf"
LOOP = "tproxy-istio-1.6-loop"

#: Every iptables file of the corpus; Istio's builder goldens are placeholders that only parse leniently.
CORPUS_FILES = sorted(
    p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".golden", ".txt")
)
STRICT_CORPUS = [f for f in CORPUS_FILES if not f.startswith("istio-iptables/builder/")]

needs_dot = pytest.mark.skipif(
    not Path(DOT_BINARY).exists() and shutil.which("dot") is None, reason=f"Graphviz ({DOT_BINARY}) is not installed"
)


def corpus(rel: str) -> IptablesParseResult:
    return parse_iptables((CORPUS / rel).read_text(), source=rel, strict=rel in STRICT_CORPUS)


@cache
def evidence(name: str) -> Evidence:
    ex = get(name)
    assert ex is not None, name
    return ex.engine_evidence()


def snapshot(ev: Evidence) -> Snapshot:
    loaded = load_snapshot(ev.iptables, ev.ip_rule, ev.ip_route, ev.sysctl, pod_ip=ev.pod_ip)
    assert not loaded.errors, loaded.errors
    return loaded.snapshot


def envoy(ev: Evidence) -> EnvoyConfig | None:
    return parse_config_dump(ev.envoy).config if ev.envoy else None


def connections(ev: Evidence) -> list[dict[str, Any]]:
    return default_connections(ev)


def stored_stories(ev: Evidence) -> list[dict[str, Any]]:
    """The stories as an analysis stores them (Analysis.results["stories"])."""
    conns = connections(ev)
    return stored(retrace(ev, conns), conns)


def first_inbound(stories: list[Any]) -> Any:
    return next(s for s in stories if s.direction == "inbound")
