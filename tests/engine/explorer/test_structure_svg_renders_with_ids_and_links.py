"""Graphviz renders the structure of every example; nodes keep their ids and the caller's links."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from meshviz.engine.explorer.rule_table import hits_from_stories
from meshviz.engine.explorer.structure import node_id, render_structure_svg, structure_dot

from .helpers import EXAMPLE_NAMES, TPROXY_OK, envoy, evidence, needs_dot, snapshot, stored_stories

XLINK = "{http://www.w3.org/1999/xlink}href"


@needs_dot
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_renders(name: str) -> None:
    ev = evidence(name)
    dot = structure_dot(snapshot(ev), envoy(ev), hits_from_stories(stored_stories(ev)), link=lambda i: f"#{i}")
    root = ET.fromstring(render_structure_svg(dot))
    ids = {el.get("id") for el in root.iter()}
    assert node_id("hook", "PREROUTING") in ids
    assert node_id("listener", "virtualInbound") in ids
    hrefs = {el.get(XLINK) or el.get("href") for el in root.iter()}
    assert f"#{node_id('listener', 'virtualInbound')}" in hrefs


@needs_dot
def test_highlighted_rule_and_its_chain_are_emphasised() -> None:
    ev = evidence(TPROXY_OK)
    key = ("mangle", "ISTIO_TPROXY", 1)
    plain = structure_dot(snapshot(ev), envoy(ev))
    lit = structure_dot(snapshot(ev), envoy(ev), highlight=[key])
    assert plain != lit
    row = f'ID="{node_id("rule", *key)}"'
    assert row in lit
    assert 'BGCOLOR="#fff3c4"' in lit.split(row, 1)[1].split("</TR>", 1)[0]
    assert 'BGCOLOR="#fff3c4"' not in plain
    root = ET.fromstring(render_structure_svg(lit))
    assert "a_" + node_id("rule", *key) in {el.get("id") for el in root.iter()}


def test_node_ids_round_trip() -> None:
    from meshviz.engine.explorer.structure import parse_node_id

    for kind, parts in [
        ("rule", ("mangle", "ISTIO_INBOUND", "3")),
        ("cluster", ("outbound|8083||geo.hr2.svc.cluster.local",)),
        ("chain", ("nat", 'we"ird:name<>')),
    ]:
        nid = node_id(kind, *parts)
        assert '"' not in nid and "<" not in nid
        assert parse_node_id(nid) == (kind, parts)
