"""TPROXY/REDIRECT rules are linked to the Envoy listener on their port; original_src's mark to the fwmark rule."""

from __future__ import annotations

import re

from meshviz.engine.explorer.structure import node_id, structure_dot

from .helpers import NO_POLICY_ROUTE, REDIRECT, TPROXY_OK, envoy, evidence, snapshot


def _names(dot: str) -> dict[str, str]:
    return {v: k for k, v in re.findall(r'^\s+(n\d+) \[id="([^"]+)"', dot, re.M)}


def test_tproxy_rule_points_at_virtual_inbound() -> None:
    ev = evidence(TPROXY_OK)
    dot = structure_dot(snapshot(ev), envoy(ev))
    n = _names(dot)
    edge = f"{n[node_id('chain', 'mangle', 'ISTIO_TPROXY')]}:r1:e -> {n[node_id('listener', 'virtualInbound')]}"
    assert edge + " [label=<TPROXY → :15006 (#1)>" in dot


def test_redirect_rules_point_at_both_sidecar_listeners() -> None:
    ev = evidence(REDIRECT)
    dot = structure_dot(snapshot(ev), envoy(ev))
    n = _names(dot)
    inbound = f"{n[node_id('chain', 'nat', 'ISTIO_IN_REDIRECT')]}:r1:e -> {n[node_id('listener', 'virtualInbound')]}"
    outbound = f"{n[node_id('chain', 'nat', 'ISTIO_REDIRECT')]}:r1:e -> {n[node_id('listener', 'virtualOutbound')]}"
    assert inbound in dot and outbound in dot


def test_a_port_nobody_listens_on_is_shown_as_such() -> None:
    ev = evidence(TPROXY_OK)
    config = envoy(ev)
    assert config is not None
    from dataclasses import replace

    without = replace(config, listeners=tuple(x for x in config.listeners if x.name != "virtualInbound"))
    dot = structure_dot(snapshot(ev), without)
    assert f'id="{node_id("port", 15006)}"' in dot and "nothing listens on :15006" in dot


def test_original_src_mark_meets_the_policy_rule() -> None:
    ok = evidence(TPROXY_OK)
    dot = structure_dot(snapshot(ok), envoy(ok))
    n = _names(dot)
    assert f"{n[node_id('listener', 'virtualInbound')]} -> {n[node_id('iprule', 32765)]} [label=<SO_MARK 1337" in dot
    broken = evidence(NO_POLICY_ROUTE)
    dot = structure_dot(snapshot(broken), envoy(broken))
    assert "no ip rule for fwmark 1337" in dot
