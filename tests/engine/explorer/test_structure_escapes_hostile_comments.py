"""A rule comment with <script> and DOT metacharacters renders inert in the structure DOT and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from meshviz.engine.explorer.structure import render_structure_svg, structure_dot
from meshviz.engine.pipeline.load import load_snapshot

from .helpers import TPROXY_OK, envoy, evidence, needs_dot

EVIL = '<script>alert(1)</script> " \\N { } | < > ]; digraph x {'
RULE = "-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006"


def _dot() -> str:
    ev = evidence(TPROXY_OK)
    quoted = EVIL.replace("\\", "\\\\").replace('"', '\\"')
    iptables = ev.iptables.replace(RULE, RULE.replace("-j TPROXY", f'-m comment --comment "{quoted}" -j TPROXY'))
    assert iptables != ev.iptables
    loaded = load_snapshot(iptables, ev.ip_rule, ev.ip_route, ev.sysctl, pod_ip=ev.pod_ip)
    assert not loaded.errors
    return structure_dot(loaded.snapshot, envoy(ev), link=lambda nid: f'/a/x/rule?id={nid}&q="\\N<b>')


def test_dot_has_no_raw_markup() -> None:
    dot = _dot()
    assert "<script>" not in dot
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dot
    # the comment is shown (escaped) inside its rule row, never as DOT syntax of its own
    row = dot.split('ID="rule:mangle:ISTIO_TPROXY:1"', 1)[1].split("</TR>", 1)[0]
    assert "&lt;script&gt;" in row
    assert "\\N" not in dot.replace("\\\\N", "")  # backslashes doubled in labels, encoded in URLs


@needs_dot
def test_svg_is_well_formed_and_has_no_script_element() -> None:
    dot = _dot()
    svg = render_structure_svg(dot)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert [g.get("id") for g in root.iter(f"{ns}g") if g.get("class") == "graph"] == ["graph0"]
    nodes = [g for g in root.iter(f"{ns}g") if g.get("class") == "node"]
    assert len(nodes) == dot.count(" [id=")
    tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert "script" not in tags
    text = "".join(root.itertext())
    assert "<script>alert(1)</script>" in text or "&lt;script&gt;" in svg.decode()
