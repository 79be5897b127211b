"""Bad input comes back as ParseErrors (json's line/column, or the JSON path), never as an exception."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from meshviz.engine.envoy import parse_config_dump

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


def test_malformed_json_gives_one_error_with_line_column_and_text() -> None:
    text = '{\n  "configs": [\n    {"@type": "x",\n     "oops" 1}\n  ]\n}\n'
    result = parse_config_dump(text, "dump.json")
    assert len(result.errors) == 1
    err = result.errors[0]
    assert (err.source, err.line, err.column) == ("dump.json", 4, 13)
    assert err.text == '"oops" 1}'
    assert err.message.startswith("not valid JSON: Expecting ':' delimiter")
    assert result.config.listeners == () and result.config.errors == result.errors


def test_empty_and_non_object_input() -> None:
    assert parse_config_dump("").errors[0].message.startswith("not valid JSON")
    err = parse_config_dump("42").errors[0]
    assert err.message == "$: expected a JSON object or array, got int"
    err = parse_config_dump('{"hello": 1}').errors[0]
    assert err.message.startswith("$: not an Envoy config dump")


def test_configs_must_be_a_list() -> None:
    text = '{\n "configs": {"a": 1}\n}'
    err = parse_config_dump(text).errors[0]
    assert err.message == "configs: expected a list, got dict"
    assert err.line == 2 and err.text == '"configs": {"a": 1}'


def test_bad_port_points_at_the_json_path_and_line() -> None:
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "dynamic_listeners": [
                    {
                        "name": "l1",
                        "active_state": {
                            "listener": {
                                "name": "l1",
                                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 70000}},
                                "filter_chains": [],
                            }
                        },
                    }
                ],
            }
        ]
    }
    text = json.dumps(dump, indent=1)
    result = parse_config_dump(text, "d.json")
    assert len(result.errors) == 1
    err = result.errors[0]
    assert err.message.startswith(
        "configs[0].dynamic_listeners[0].active_state.listener.address.socket_address.port_value: "
        "expected an integer 0..65535, got 70000"
    )
    assert text.splitlines()[err.line - 1].strip() == err.text == '"port_value": 70000'
    # The listener is kept, reported as failed, and never used.
    lst = result.config.listeners[0]
    assert lst.state == "error" and lst.error_detail is not None and lst.error_detail.startswith("meshviz:")


def test_bad_prefix_range_fails_the_listener_like_envoy_would() -> None:
    listener = {
        "name": "l",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
        "filter_chains": [
            {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "10.0.0.300", "prefix_len": 8}]}}
        ],
    }
    result = parse_config_dump(json.dumps([listener]))
    assert len(result.errors) == 1
    assert "filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix" in result.errors[0].message
    assert result.config.listeners[0].state == "error"


def test_listener_address_must_be_an_ip() -> None:
    listener = {"name": "l", "address": {"socket_address": {"address": "example.com", "port_value": 80}}}
    result = parse_config_dump(json.dumps([listener]))
    assert "listener address is not an IP" in result.errors[0].message
    assert result.config.listeners[0].address is None


def test_cluster_without_name_is_an_error_and_others_still_parse() -> None:
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "dynamic_active_clusters": [
                    {"cluster": {"type": "STATIC"}},
                    {"cluster": {"name": "ok", "type": "EDS"}},
                ],
            }
        ]
    }
    result = parse_config_dump(json.dumps(dump))
    assert [e.message for e in result.errors] == [
        "configs[0].dynamic_active_clusters[0].cluster.name: cluster without a name"
    ]
    assert [c.name for c in result.config.clusters] == ["ok"]


def test_unknown_list_items_are_reported() -> None:
    result = parse_config_dump('[1, {"foo": "bar"}]')
    assert [e.message for e in result.errors] == [
        "$[0]: expected an object, got int",
        "$[1]: not a Listener, Cluster or RouteConfiguration (keys: foo)",
    ]


@pytest.mark.parametrize("seed", range(25))
def test_never_raises_on_damaged_dumps(seed: int) -> None:
    rng = random.Random(seed)
    text = (FIXTURES / "istio-1.4-sidecar-productpage.json").read_text()
    obj = json.loads(text)

    def damage(node: object) -> object:
        if isinstance(node, dict):
            return {k: damage(v) for k, v in node.items() if rng.random() > 0.02}
        if isinstance(node, list):
            return [damage(v) for v in node]
        r = rng.random()
        if r < 0.03:
            return rng.choice([None, -1, "x", [], {}, 1.5, True, "1.2.3.4", {"value": "?"}])
        return node

    damaged = json.dumps(damage(obj))
    result = parse_config_dump(damaged, "damaged.json")
    assert result.config is not None
    cut = text[: rng.randrange(len(text))]
    result = parse_config_dump(cut, "cut.json")
    assert len(result.errors) == 1 and result.errors[0].message.startswith("not valid JSON")


def test_problems_inside_a_listener_envoy_rejected_are_warnings() -> None:
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "dynamic_listeners": [
                    {
                        "name": "bad",
                        "error_state": {
                            "failed_configuration": {
                                "name": "bad",
                                "address": {"socket_address": {"address": "0.0.0.0", "port_value": 99999}},
                            },
                            "details": "port out of range",
                        },
                    }
                ],
            }
        ]
    }
    result = parse_config_dump(json.dumps(dump, indent=1))
    assert result.errors == ()
    assert any("(in a listener Envoy rejected)" in w.message for w in result.warnings)
    lst = result.config.listeners[0]
    assert lst.state == "error" and lst.error_detail == "port out of range"


def test_source_refs_point_at_the_objects() -> None:
    name = "istio-1.18-sidecar-geo-virtualInbound-error-state.json"
    text = (FIXTURES / name).read_text()
    config = parse_config_dump(text, name).config
    for obj in (config.cluster("inbound|8083||"), config.listener("virtualOutbound")):
        assert obj is not None and obj.source is not None
        assert obj.source.source == name
        assert text.splitlines()[obj.source.line - 1].strip() == obj.source.text
        assert obj.name in obj.source.text
    assert config.cluster("inbound|8083||").source.line == 2681  # type: ignore[union-attr]
