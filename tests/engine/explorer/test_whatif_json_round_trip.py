"""Edits come from JSON and go back to it; a WhatIf result is JSON-serialisable, stories in the stored shape."""

from __future__ import annotations

import json

import pytest

from meshviz.engine.explorer.edits import Edit, parse_edits
from meshviz.engine.explorer.rule_table import hits_from_stories
from meshviz.engine.explorer.whatif import whatif

from .helpers import TPROXY_OK, connections, evidence

EDITS = [
    {"op": "insert", "table": "mangle", "chain": "ISTIO_INBOUND", "index": 1, "rule": "-p tcp --dport 8083 -j RETURN"},
    {"op": "move", "table": "mangle", "chain": "ISTIO_INBOUND", "index": 2, "to_index": 3},
    {"op": "sysctl", "key": "net.ipv4.ip_forward", "value": "1"},
    {"op": "envoy_original_src", "mark": None, "listener": "virtualInbound"},
    {"op": "envoy_bind", "address": "127.0.0.6", "cluster": "inbound|8083||"},
    {"op": "append_text", "kind": "ip_rule", "text": "ip rule add fwmark 1338 lookup 134"},
]


def test_edits_round_trip() -> None:
    edits, errors = parse_edits(EDITS)
    assert not errors
    assert [e.to_dict() for e in edits] == EDITS
    assert Edit.from_dict(edits[0].to_dict()) == edits[0]


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"op": "explode"}, "unknown edit op"),
        ({"op": "delete", "index": "two"}, "index must be an integer"),
        ({"op": "delete", "index": True}, "index must be an integer"),
        ({"op": "delete", "colour": "red"}, "unknown edit field"),
        ("delete", "must be an object"),
    ],
)
def test_bad_json_edits_are_errors(item: object, words: str) -> None:
    edits, errors = parse_edits([{"op": "delete", "table": "nat", "chain": "OUTPUT", "index": 1}, item])
    assert len(edits) == 1
    (err,) = errors
    assert err.source == "edit 2" and words in err.message


def test_whatif_to_dict_is_json_with_stored_stories() -> None:
    ev = evidence(TPROXY_OK)
    edits, _ = parse_edits(EDITS[:1])
    result = whatif(ev, connections(ev), edits)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["ok"] is True and d["errors"] == []
    assert d["edits"] == EDITS[:1]
    assert d["changed"] == sum(1 for x in d["diff"] if x["changed"])
    assert d["patch"].startswith("--- a/iptables-save\n+++ b/iptables-save\n")
    assert [s["connection"] for s in d["stories"]] == connections(ev)
    # the inserted RETURN (now rule 1 of ISTIO_INBOUND) is hit by the inbound connection to 8083
    assert 1 in hits_from_stories(d["stories"])[("mangle", "ISTIO_INBOUND", 1)]
    inbound = d["diff"][0]
    assert inbound["changed"] is True and "intercepted" in inbound["changed_fields"]
