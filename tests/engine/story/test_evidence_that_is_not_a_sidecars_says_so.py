"""Evidence that is not an Istio sidecar's gets no sidecar advice: ambient in-pod redirection, rules with no Istio
chain (kube-proxy), a waypoint's config dump; and conflicting pieces of evidence are pointed out."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.fix.plans import fix
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.pipeline.pod import run_story

FIX = Path(__file__).resolve().parents[2] / "fixtures"
AMBIENT = (FIX / "corpus/iptables-save/istio/istio-io-docs-ambient-inpod-pod-netns.txt").read_text()
KUBE_PROXY = (FIX / "corpus/iptables-save/kube-proxy/kube-proxy-TestOverallIPTablesRules.txt").read_text()
WAYPOINT = (FIX / "envoy/istio-1.21-waypoint-httpbin-not-sidecar.json").read_text()
REDIRECT = (FIX / "corpus/istio-cni/plugin/basic.txt.golden").read_text()
TPROXY = (FIX / "corpus/istio-cni/plugin/tproxy.txt.golden").read_text()
DUMP_14 = (FIX / "envoy/istio-1.4-sidecar-productpage.json").read_text()
DUMP_118_ERROR = (FIX / "envoy/istio-1.18-sidecar-geo-virtualInbound-error-state.json").read_text()


def _story(**kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("pod_ip", "10.0.0.5")
    r = run_story(client="10.1.1.1:40000", port=kw.pop("port", 8080), **kw)  # type: ignore[arg-type]
    assert not r.errors and r.story is not None
    return r.story


def test_ambient_in_pod_rules_are_named_and_get_no_sidecar_fix() -> None:
    st = _story(iptables=AMBIENT)
    assert st.facts["scope"] == "ambient-inpod"
    assert st.findings[0].kind == "cause" and "ambient" in st.findings[0].text
    result = fix(Evidence(iptables=AMBIENT, pod_ip="10.0.0.5"), client="10.1.1.1:40000", port=8080)
    assert not result.works and result.repairs == []
    assert any("no fix is offered" in n for n in result.notes)


def test_kube_proxy_rules_without_istio_chains_say_they_hold_no_sidecar() -> None:
    st = _story(iptables=KUBE_PROXY)
    assert st.facts["scope"] == "no-istio"
    assert "no Istio chain" in st.findings[0].text
    assert "REDIRECT mode" not in st.summary


def test_a_waypoints_dump_is_not_a_sidecars() -> None:
    st = _story(iptables=REDIRECT, envoy=WAYPOINT, pod_ip="192.168.252.229")
    assert st.facts["scope"] == "waypoint"
    assert "waypoint" in st.summary


def test_a_dump_for_redirect_with_tproxy_rules_is_the_cause_it_names() -> None:
    st = _story(iptables=TPROXY, envoy=DUMP_14, pod_ip="172.30.144.174", port=9080)
    assert st.verdict.failure_code
    assert "INTERCEPTION_MODE REDIRECT" in st.findings[0].text and st.findings[0].kind == "cause"
    assert "INTERCEPTION_MODE REDIRECT" in st.summary


def test_a_rejected_capture_listener_leads_with_envoys_own_message() -> None:
    st = _story(iptables=TPROXY, envoy=DUMP_118_ERROR, pod_ip="172.16.188.31", port=8083)
    assert st.findings[0].text.startswith("Envoy rejected listener virtualInbound (port 15006): Proto constraint")
    assert "LuaValidationError" in st.summary
    assert sum(f.text.startswith("Envoy rejected listener virtualInbound") for f in st.findings) == 1


def test_an_excluded_application_port_is_pointed_out() -> None:
    rules = REDIRECT.replace(
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n-A ISTIO_INBOUND -p tcp --dport 8080 -j RETURN",
    )
    assert rules != REDIRECT
    st = _story(iptables=rules, app_ports=(8080,))
    assert any("port 8080 is the application's, but the rules exclude it" in f.text for f in st.findings)
