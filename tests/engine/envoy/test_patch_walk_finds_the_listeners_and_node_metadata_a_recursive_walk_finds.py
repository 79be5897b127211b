"""The patcher's walk over a dump (`envoy.patch._walk`, one pass with its own stack, shared by the mode switch and
the original_src repair) finds exactly the listener objects and node metadata objects, the very objects and in the
same order, that the plain recursive definition finds: listeners not inside another listener or an error or
draining state, every `node.metadata` anywhere.  Over every fixture dump and shapes made to trip it up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshviz.engine.envoy.patch import _SKIP, _is_listener, iter_listeners, iter_node_metadata, patch_dump

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
DUMPS = sorted([*ROOT.glob("envoy/*.json"), *ROOT.glob("scenarios/*/envoy.json")])


def listeners_by_recursion(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        if _is_listener(obj):
            return [obj]
        return [x for k, v in obj.items() if k not in _SKIP for x in listeners_by_recursion(v)]
    if isinstance(obj, list):
        return [x for item in obj for x in listeners_by_recursion(item)]
    return []


def metadata_by_recursion(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        node = obj.get("node")
        found = [node["metadata"]] if isinstance(node, dict) and isinstance(node.get("metadata"), dict) else []
        return found + [x for v in obj.values() for x in metadata_by_recursion(v)]
    if isinstance(obj, list):
        return [x for item in obj for x in metadata_by_recursion(item)]
    return []


def listener(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}}, **extra}


TRICKY = {
    "configs": [
        {"bootstrap": {"node": {"id": "a", "metadata": {"INTERCEPTION_MODE": "REDIRECT", "node": {"metadata": {}}}}}},
        {
            "dynamic_listeners": [
                {"name": "x", "active_state": {"listener": listener("outer", filter_chains=[listener("inner")])}},
                {"name": "y", "error_state": {"failed_configuration": {"listener": listener("failed")}}},
                {"name": "z", "draining_state": {"listener": listener("draining", use_original_dst=True)}},
                [listener("in-a-list", listener_filters=[]), [listener("deeper", filterChains=[])]],
                {"name": "only-a-name", "address": {}},  # no listener keys: not a listener
            ]
        },
        {"node": {"metadata": {"second": "node"}}, "listener": listener("beside-a-node", filter_chains=[])},
    ]
}


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fixture_dump_gives_the_same_objects_in_the_same_order(path: Path) -> None:
    dump = json.loads(path.read_text())
    assert [id(x) for x in iter_listeners(dump)] == [id(x) for x in listeners_by_recursion(dump)]
    assert [id(x) for x in iter_node_metadata(dump)] == [id(x) for x in metadata_by_recursion(dump)]


def test_nested_listeners_error_and_draining_states_and_nested_nodes_are_walked_as_the_recursion_walks_them() -> None:
    found = list(iter_listeners(TRICKY))
    assert [x["name"] for x in found] == ["outer", "in-a-list", "deeper", "beside-a-node"]
    assert [id(x) for x in found] == [id(x) for x in listeners_by_recursion(TRICKY)]
    assert [id(x) for x in iter_node_metadata(TRICKY)] == [id(x) for x in metadata_by_recursion(TRICKY)]
    assert len(list(iter_node_metadata(TRICKY))) == 3


def test_switching_the_tricky_dump_to_tproxy_changes_exactly_the_listeners_and_nodes_found() -> None:
    result = patch_dump(
        json.dumps(TRICKY), mode="TPROXY", transparent=True, original_src=(("outer", "beside-a-node"), 1337)
    )
    patched = json.loads(result.text)
    assert [x.get("transparent") for x in listeners_by_recursion(patched)] == [True, True, True, True]
    assert [md.get("INTERCEPTION_MODE") for md in metadata_by_recursion(patched)] == ["TPROXY"] * 3
    with_src = [x["name"] for x in listeners_by_recursion(patched) if x.get("listener_filters")]
    assert with_src == ["outer", "beside-a-node"]
    assert "listener failed" not in " ".join(result.changes)
