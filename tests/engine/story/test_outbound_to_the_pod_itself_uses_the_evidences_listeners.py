"""A call from the application to its own pod (127.0.0.1:PORT, the pod IP) finds the same listeners the inbound
story uses: the evidence's application ports, or a listener assumed on that port and said so."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.engine.pipeline.pod import run_story

RULES = (Path(__file__).resolve().parents[2] / "fixtures/corpus/istio-cni/plugin/basic.txt.golden").read_text()
POD = "10.0.0.5"


def _outbound(dst: str, **kw: object):  # type: ignore[no-untyped-def]
    r = run_story(iptables=RULES, pod_ip=POD, direction="outbound", dst=dst, app_uid=1000, app_gid=1000, **kw)  # type: ignore[arg-type]
    assert not r.errors and r.story is not None
    return r.story


@pytest.mark.parametrize("dst", ["127.0.0.1:8080", f"{POD}:8080"])
def test_a_call_to_the_pod_itself_reaches_the_application_on_a_given_port(dst: str) -> None:
    st = _outbound(dst, app_ports=(8080,))
    assert st.verdict.destination_reached is True and st.verdict.failure_code is None, st.summary
    assert not any("assuming the application listens" in f.text for f in st.findings)


@pytest.mark.parametrize("dst", ["127.0.0.1:9090", f"{POD}:9090"])
def test_a_call_to_a_port_the_evidence_does_not_name_assumes_a_listener_and_says_so(dst: str) -> None:
    st = _outbound(dst)
    assert st.verdict.failure_code != "NO_LISTENER", st.summary
    assert any("assuming the application listens on port 9090" in f.text for f in st.findings)
