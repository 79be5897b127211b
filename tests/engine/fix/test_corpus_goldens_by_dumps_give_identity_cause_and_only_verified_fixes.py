"""Every Istio REDIRECT/TPROXY golden (istio-iptables and the istio-cni plugin) against every sidecar config dump
in the corpus: the pod's identity is the dump's, the default connections are the application's ports (never
Istio's own 15000-15090), every failure names a cause (an Envoy rejection first when there is one), and a fix is
only ever offered when its re-simulation reaches the goal."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.explorer.whatif import default_connections
from meshviz.engine.fix.plans import fix
from meshviz.engine.pipeline.evidence import Evidence, identity_of, story_for, with_identity

FIX = Path(__file__).resolve().parents[2] / "fixtures"
GOLDENS = sorted(
    p
    for p in [*(FIX / "corpus/istio-iptables").glob("*.golden"), *(FIX / "corpus/istio-cni/plugin").glob("*.golden")]
    if ("-j REDIRECT" in p.read_text() or "-j TPROXY" in p.read_text()) and "ISTIO_INBOUND" in p.read_text()
)
DUMPS = sorted(p for p in (FIX / "envoy").glob("istio-*.json") if "not-sidecar" not in p.name)
CLIENT = "10.1.1.1:40000"


def _case(golden: Path, dump: Path) -> Evidence:
    cfg = parse_config_dump(dump.read_text()).config
    pod_ip = (cfg.node_id or "sidecar~10.0.0.5~").split("~")[1] or "10.0.0.5"
    return Evidence(iptables=golden.read_text(), pod_ip=pod_ip, envoy=dump.read_text())


@pytest.mark.parametrize("dump", DUMPS, ids=[d.stem for d in DUMPS])
@pytest.mark.parametrize("golden", GOLDENS, ids=[g.stem for g in GOLDENS])
def test_identity_connections_cause_and_fix(golden: Path, dump: Path) -> None:
    ev = _case(golden, dump)
    ident = identity_of(ev)
    enriched = with_identity(ev)
    if ident.name:
        assert enriched.pod_name == ident.name and (enriched.namespace or "") == ident.namespace
    conns = default_connections(ev)
    inbound = [c for c in conns if c["direction"] == "inbound"]
    assert inbound and all(not 15000 <= c["port"] <= 15090 for c in inbound), conns
    if ident.app_ports:
        assert [c["port"] for c in inbound] == list(ident.app_ports)
    port = inbound[0]["port"]
    story = story_for(ev, client=CLIENT, port=port)
    causes = [f for f in story.findings if f.kind == "cause"]
    assert causes, story.summary
    cfg = parse_config_dump(dump.read_text()).config
    if any(lst.state == "error" and lst.name.startswith("virtualInbound") for lst in cfg.listeners) and (
        story.verdict.failure_code
    ):
        assert story.findings[0].text.startswith("Envoy rejected listener virtualInbound"), story.summary
        assert "Envoy rejected listener" in story.summary
    result = fix(ev, client=CLIENT, port=port).to_dict()
    if result["patches"]:
        assert result["works"], result["tried"]
        after = result["after"]
        assert after["app_reached"] and after["app_peer_ip"] == "10.1.1.1" and not after["failure"]
    if not result["works"]:
        assert result["patches"] == [] and "patched" not in result
        assert result["tried"] or result["notes"], result
    for p in result["patches"]:
        for a in p["artifacts"]:
            if a["kind"] == "kubectl-patch" and ident.namespace:
                assert f"-n {ident.namespace}" in a["content"] and "<your-workload>" not in a["content"], a
            if a["kind"] == "envoyfilter" and ident.namespace:
                assert f"namespace: {ident.namespace}" in a["content"], a
