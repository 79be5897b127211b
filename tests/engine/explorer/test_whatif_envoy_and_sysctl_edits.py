"""Envoy bind / original_src and sysctl edits rewrite the evidence texts and change the verdicts the engine derives."""

from __future__ import annotations

import json

from meshviz.engine.envoy.model import ORIGINAL_SRC
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits, whatif
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.routing.sysctl import parse_sysctls

from .helpers import REDIRECT, TPROXY_OK, connections, evidence


def test_removing_original_src_loses_the_client_ip() -> None:
    ev = evidence(TPROXY_OK)
    result = whatif(ev, connections(ev), [Edit(op="envoy_original_src", mark=None)])
    assert result.ok, result.errors
    config = parse_config_dump(result.evidence.envoy or "").config
    listener = config.listener("virtualInbound")
    assert listener is not None and listener.listener_filter(ORIGINAL_SRC) is None
    inbound = next(d for d in result.diff if d.connection["direction"] == "inbound")
    client_ip = inbound.connection["client"].rsplit(":", 1)[0]
    assert inbound.before_verdict["app_peer_ip"] == client_ip
    assert inbound.changed and inbound.after_verdict["app_peer_ip"] != client_ip
    # the dump keeps its layout: only the filter's lines leave
    removed = [ln for ln in result.patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln for ln in result.patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert added == [] and 0 < len(removed) < 12
    assert any(ORIGINAL_SRC in ln for ln in removed)
    assert json.loads(result.evidence.envoy or "") is not None


def _exempt_index(ev_iptables: str) -> int:
    """The ISTIO_OUTPUT rule that lets Envoy's 127.0.0.6-bound upstream connections through."""
    rs = parse_iptables(ev_iptables).rulesets[0]
    nat = rs.table("nat")
    chain = nat.chain("ISTIO_OUTPUT") if nat is not None else None
    assert chain is not None
    return next(i for i, r in enumerate(chain.rules, 1) if r.src is not None and str(r.src.network) == "127.0.0.6/32")


def test_a_bind_address_istio_does_not_exempt_loops() -> None:
    ev = evidence(REDIRECT)
    result = whatif(ev, connections(ev), [Edit(op="envoy_bind", address="127.0.0.9", cluster="inbound|8083||")])
    assert result.ok, result.errors
    cluster = parse_config_dump(result.evidence.envoy or "").config.cluster("inbound|8083||")
    assert cluster is not None and cluster.upstream_bind_config is not None
    assert cluster.upstream_bind_config.source_address is not None
    assert cluster.upstream_bind_config.source_address.address == "127.0.0.9"
    inbound = next(d for d in result.diff if d.connection["direction"] == "inbound")
    assert inbound.before_verdict["loop"] is False
    # only 127.0.0.6 is exempted from ISTIO_OUTPUT's redirect: Envoy's upstream SYN comes back to Envoy
    assert inbound.changed and inbound.after_verdict["loop"] is True


def test_bind_address_plus_its_exemption_is_what_the_application_sees() -> None:
    ev = evidence(REDIRECT)
    index = _exempt_index(ev.iptables)
    edits = [
        Edit(op="envoy_bind", address="127.0.0.9", cluster="inbound|8083||"),
        Edit(op="replace", table="nat", chain="ISTIO_OUTPUT", index=index, rule="-o lo -s 127.0.0.9/32 -j RETURN"),
    ]
    result = whatif(ev, connections(ev), edits)
    assert result.ok, result.errors
    inbound = next(d for d in result.diff if d.connection["direction"] == "inbound")
    assert inbound.before_verdict["app_peer_ip"] == "127.0.0.6"
    assert inbound.after_verdict["app_peer_ip"] == "127.0.0.9" and inbound.after_verdict["failure"] is None
    assert "--- a/iptables-save" in result.patch and "--- a/envoy-config-dump.json" in result.patch


def test_sysctl_edit_replaces_the_value_in_place_or_appends() -> None:
    ev = evidence(TPROXY_OK)
    r = apply_edits(
        ev,
        [
            Edit(op="sysctl", key="net.ipv4.conf.all.route_localnet", value="1"),
            Edit(op="sysctl", key="net.ipv4.conf.all.accept_local", value="1"),
        ],
    )
    assert r.ok, r.errors
    sysctls = parse_sysctls(r.evidence.sysctl or "").sysctls
    assert sysctls.get("net.ipv4.conf.all.route_localnet") == 1
    assert sysctls.get("net.ipv4.conf.all.accept_local") == 1
    old, new = (ev.sysctl or "").splitlines(), (r.evidence.sysctl or "").splitlines()
    assert len(new) == len(old) + 1
    assert [a == b for a, b in zip(old, new, strict=False)].count(False) == 1


def test_set_text_replaces_a_whole_input() -> None:
    ev = evidence(TPROXY_OK)
    text = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
    r = apply_edits(ev, [Edit(op="set_text", kind="ip_rule", text=text)])
    assert r.ok and r.evidence.ip_rule == text
    assert r.evidence.iptables == ev.iptables
