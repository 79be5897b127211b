"""diff_envoy names what changed on listeners and clusters; diff_verdicts pairs connections and lists the unpaired."""

from __future__ import annotations

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.explorer.diff import diff_envoy, diff_verdicts
from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits, retrace, stored

from .helpers import REDIRECT, TPROXY_OK, connections, envoy, evidence


def test_bind_and_original_src_changes_are_named() -> None:
    ev = evidence(TPROXY_OK)
    edited = apply_edits(
        ev, [Edit(op="envoy_original_src", mark=42), Edit(op="envoy_bind", address="", cluster="inbound|8083||")]
    )
    assert edited.ok, edited.errors
    d = diff_envoy(envoy(ev), parse_config_dump(edited.evidence.envoy or "").config)
    (listener,) = d.listeners
    assert listener.name == "virtualInbound" and listener.status == "changed"
    assert [(c.field, c.before, c.after) for c in listener.changes] == [("original_src", 1337, 42)]
    (cluster,) = d.clusters
    assert cluster.name == "inbound|8083||"
    assert [(c.field, c.before, c.after) for c in cluster.changes] == [("upstream_bind_address", "127.0.0.6", None)]


def test_listeners_and_clusters_added_and_removed() -> None:
    a, b = envoy(evidence(REDIRECT)), None
    d = diff_envoy(a, b)
    assert a is not None and {x.name for x in d.listeners} == {x.name for x in a.listeners}
    assert all(x.status == "removed" for x in d.listeners + d.clusters)
    assert d.to_dict()["after_given"] is False


def test_verdicts_pair_by_connection_and_keep_the_unpaired() -> None:
    ev = evidence(TPROXY_OK)
    conns = connections(ev)
    extra = {"direction": "inbound", "client": "10.9.9.9:1234", "port": 8083}
    a = stored(retrace(ev, conns), conns)
    b_conns = [extra, *reversed(conns)]
    b = stored(retrace(ev, b_conns), b_conns)
    out = diff_verdicts(a, b)
    assert [(x["status"], x["number_before"], x["number_after"]) for x in out] == [
        ("both", 1, 3),
        ("both", 2, 2),
        ("only_after", None, 1),
    ]
    assert [x["changed"] for x in out] == [False, False, True]
    assert out[2]["connection"] == extra
