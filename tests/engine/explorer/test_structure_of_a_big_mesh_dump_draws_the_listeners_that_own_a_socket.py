"""A big mesh's dump (no Sidecar resource: a listener without a socket of its own and clusters for every service of
the mesh) is drawn in the structure graph as the active listeners that own a socket, the clusters their filter
chains lead to and a note counting the rest - a graph Graphviz renders - instead of 4 MB of DOT the renderer then
refuses.  A dump under the limit is still drawn whole."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.explorer.structure import (
    MAX_ENVOY_OBJECTS,
    MAX_SUMMARY_LISTENERS,
    node_id,
    render_structure_svg,
    structure_dot,
)
from meshviz.engine.render.dot import MAX_DOT_BYTES

from .helpers import TPROXY_OK, evidence, needs_dot, snapshot

DUMP = Path(__file__).resolve().parents[2] / "fixtures" / "envoy" / "istio-1.4-sidecar-productpage.json"


def big_mesh(services: int) -> Any:
    """The productpage sidecar's dump with `services` more services: a listener without a socket of its own
    (bind_to_port false, as Istio's per-service outbound listeners) and a cluster each."""
    dump = json.loads(DUMP.read_text())
    for cfg in dump["configs"]:
        if "dynamic_listeners" in cfg:
            template = cfg["dynamic_listeners"][0]
            for n in range(services):
                entry = copy.deepcopy(template)
                lst = entry["active_state"]["listener"]
                lst["name"] = f"10.{n // 250}.{n % 250}.9_9080"
                lst["address"]["socket_address"]["address"] = f"10.{n // 250}.{n % 250}.9"
                lst["deprecated_v1"] = {"bind_to_port": False}
                lst["bind_to_port"] = False
                cfg["dynamic_listeners"].append(entry)
        if "dynamic_active_clusters" in cfg:
            for n in range(services):
                cfg["dynamic_active_clusters"].append(
                    {
                        "cluster": {
                            "name": f"outbound|9080||svc{n}.mesh.svc.cluster.local",
                            "type": "EDS",
                            "connect_timeout": "1s",
                        }
                    }
                )
    return dump


def drawn(dot: str, kind: str) -> set[str]:
    return set(re.findall(rf'id="({kind}:[^"]+)"', dot))


def ids(kind: str, names: Iterable[str]) -> set[str]:
    return {node_id(kind, name) for name in names}


def test_a_big_mesh_dump_is_drawn_as_its_socket_listeners_and_their_clusters_with_the_rest_counted() -> None:
    config = parse_config_dump(json.dumps(big_mesh(800)), "big.json").config
    assert len(config.listeners) + len(config.clusters) > MAX_ENVOY_OBJECTS
    owners = [x.name for x in config.listeners if x.state == "active" and x.bind_to_port]
    dot = structure_dot(snapshot(evidence(TPROXY_OK)), config)
    assert drawn(dot, "listener") == ids("listener", owners[:MAX_SUMMARY_LISTENERS]) and owners
    assert not any(name.startswith("listener:10.") for name in drawn(dot, "listener"))  # no socket of their own
    assert not any(".mesh.svc" in name for name in drawn(dot, "cluster"))  # no drawn filter chain leads to them
    hidden = len(config.listeners) - len(drawn(dot, "listener"))
    assert f"{hidden:,} more listeners" in dot
    assert len(dot) < MAX_DOT_BYTES / 4


def test_a_dump_under_the_limit_is_drawn_whole() -> None:
    config = parse_config_dump(DUMP.read_text(), "small.json").config
    assert len(config.listeners) + len(config.clusters) <= MAX_ENVOY_OBJECTS
    dot = structure_dot(snapshot(evidence(TPROXY_OK)), config)
    assert drawn(dot, "listener") >= ids("listener", [x.name for x in config.listeners if x.state == "active"])
    assert drawn(dot, "cluster") >= ids("cluster", [c.name for c in config.clusters])
    assert "more listeners" not in dot


@needs_dot
def test_the_big_mesh_graph_renders() -> None:
    config = parse_config_dump(json.dumps(big_mesh(800)), "big.json").config
    svg = render_structure_svg(structure_dot(snapshot(evidence(TPROXY_OK)), config))
    assert b"more listeners" in svg
