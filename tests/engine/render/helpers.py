"""Stories for the diagram tests, built from the evidence under tests/fixtures."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from meshviz.engine.pipeline.evidence import story_for
from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.render.dot import DOT_BINARY, render_svg
from meshviz.engine.story.model import Story

from ..fix.helpers import CLIENT, PORT, tproxy_evidence

SCENARIOS = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
EVIDENCE = {"iptables": "iptables", "ip_rule": "ip-rule", "ip_route": "ip-route", "sysctl": "sysctl"}

needs_dot = pytest.mark.skipif(
    not Path(DOT_BINARY).exists() and shutil.which("dot") is None, reason=f"Graphviz ({DOT_BINARY}) is not installed"
)


def scenario_story(name: str) -> Story:
    """The story of one scenario folder (evidence files + case.json args)."""
    path = SCENARIOS / name
    case = json.loads((path / "case.json").read_text())
    kw: dict[str, object] = {k: (path / f).read_text() if (path / f).exists() else None for k, f in EVIDENCE.items()}
    envoy = path / "envoy.json"
    ref = path / "envoy.ref"
    if ref.exists():
        envoy = (path / ref.read_text().strip()).resolve()
    kw["envoy"] = envoy.read_text() if envoy.exists() else None
    args = dict(case["args"])
    if "app_ports" in args:
        args["app_ports"] = tuple(args["app_ports"])
    r = run_story(**kw, **args)  # type: ignore[arg-type]
    assert r.story is not None, r.errors
    return r.story


def tproxy_story(**kw: object) -> Story:
    """Istio's TPROXY rules with the policy route, the original_src sidecar dump: the application sees the client."""
    return story_for(tproxy_evidence(app_ports=(PORT,), **kw), client=CLIENT, port=PORT)


def svg_of(dot: str) -> str:
    """Render with dot and check the SVG is well-formed XML without script elements."""
    svg = render_svg(dot).decode("utf-8")
    root = ET.fromstring(svg)
    assert not [el for el in root.iter() if el.tag.rsplit("}", 1)[-1].lower() == "script"]
    assert "<script" not in svg.lower()
    return svg


def svg_text(svg: str) -> str:
    """All the text the SVG shows, one string (labels are split into one <text> per line)."""
    root = ET.fromstring(svg)
    return "\n".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("}text") or el.tag == "text")
