"""When exec into istio-proxy is forbidden or impossible, the one capture container also reads Envoy's config
dump (it shares the pod's network namespace, so 127.0.0.1:15000 is reachable) with pilot-agent; the admin
port pod proxy is not needed.  When exec works, the capture container does not read the dump again."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.engine.envoy.lazy import redact_config_dump_text
from meshviz.engine.pipeline.evidence import story_for
from tests.kube.fake_apiserver import FakeApiServer, redirect_data
from tests.kube.helpers import CLIENT, POD, REDIRECT_NS, evidence


@pytest.mark.parametrize("refusal", ["rbac-403", "no-pilot-agent-127"])
def test_exec_forbidden_dump_comes_from_the_capture_container(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient, refusal: str
) -> None:
    if refusal == "rbac-403":
        fake_apiserver.scenario.forbid("create", "pods", "exec")
    else:
        fake_apiserver.scenario.exec_exit = (127, "executable file not found in $PATH")
    seen: list[tuple[str, str, str]] = []
    c = collect_pod(api, REDIRECT_NS, POD, progress=lambda *a: seen.append(a))

    # the dump is the pod's (redacted like any other), read once, by the one capture container
    want, _ = redact_config_dump_text(redirect_data().config_dump)
    assert json.loads(c.envoy_config_dump) == json.loads(want)
    assert not c.reconstructed and c.iptables
    assert not fake_apiserver.requests_to("GET", r":15000/proxy/")
    assert len(fake_apiserver.captures) == 1
    (run,) = fake_apiserver.captures.values()
    script = run.container["command"][2]
    assert "pilot-agent request GET config_dump" in script
    assert "### meshviz:config_dump-tool" in run.log and "\npilot-agent\n" in run.log

    note = next(n for n in c.notes if "Envoy config dump read inside the capture container" in n)
    assert run.container["name"] in note and "pilot-agent" in note and "127.0.0.1:15000" in note
    assert ("forbidden" if refusal == "rbac-403" else "pilot-agent cannot run") in note
    states = [(step, state) for step, state, _ in seen]
    assert states.index(("config_dump", "fallback")) < states.index(("netfilter", "done"))
    assert states.index(("netfilter", "done")) < states.index(("config_dump", "done"))
    done = next(d for step, state, d in seen if (step, state) == ("config_dump", "done"))
    assert f"pilot-agent in the capture container {run.container['name']}" in done

    story = story_for(evidence(c), client=CLIENT, port=8083)
    assert story.verdict.app_peer_ip == "127.0.0.6"


def test_when_exec_works_the_capture_does_not_read_the_dump(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    c = collect_pod(api, REDIRECT_NS, POD)
    assert c.envoy_config_dump
    (run,) = fake_apiserver.captures.values()
    assert "config_dump" not in run.container["command"][2]
    assert "config_dump" not in run.log
    assert not any("inside the capture container" in n for n in c.notes)
