"""The comparison runs the same connection through the pod as uploaded and in the other mode."""

from meshviz.engine.envoy.patch import to_mode
from meshviz.engine.fix.compare import compare
from meshviz.engine.pipeline.evidence import Evidence

from .helpers import CLIENT, ENVOY_TPROXY, POD, PORT, REDIRECT_RULES, tproxy_evidence


def redirect_evidence() -> Evidence:
    return Evidence(
        iptables=REDIRECT_RULES, pod_ip=POD, envoy=to_mode(ENVOY_TPROXY, "REDIRECT").text, app_ports=(PORT,)
    )


def rows(out: dict, mode_a: str, mode_b: str) -> dict[str, tuple[object, object]]:
    return {r["aspect"]: (r[mode_a], r[mode_b]) for r in out["connections"][0]["rows"]}


def test_redirect_pod_compared_with_its_tproxy_twin() -> None:
    out = compare(redirect_evidence(), [(CLIENT, PORT)])
    assert out["modes"] == ["REDIRECT", "TPROXY"]
    r = rows(out, "REDIRECT", "TPROXY")
    assert "nat REDIRECT" in str(r["capture"][0]) and "mangle TPROXY" in str(r["capture"][1])
    assert r["app_peer_ip"] == ("127.0.0.6", "10.1.1.1")
    assert r["downstream_peer"][0] == r["downstream_peer"][1] == CLIENT
    assert "table 133" in str(r["reply_path"][1])
    assert out["connections"][0]["differences"]["app_peer_ip"] == {"REDIRECT": "127.0.0.6", "TPROXY": "10.1.1.1"}
    assert any("NET_ADMIN" in c for c in out["costs"]["TPROXY"])


def test_tproxy_pod_compared_with_its_redirect_twin() -> None:
    out = compare(tproxy_evidence(app_ports=(PORT,)), [(CLIENT, PORT)])
    assert out["modes"] == ["TPROXY", "REDIRECT"]
    r = rows(out, "TPROXY", "REDIRECT")
    assert r["app_peer_ip"] == ("10.1.1.1", "127.0.0.6")
