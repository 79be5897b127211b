"""A 500 from the API server is retried with backoff and the collection completes; retries are reported."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_transient_500_is_retried(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.fail("GET", rf"/pods/{POD}$", times=1, status=500)
    fake_apiserver.scenario.fail("PATCH", "/ephemeralcontainers$", times=1, status=503)
    states: list[tuple[str, str]] = []
    c = collect_pod(api, REDIRECT_NS, POD, backoff=0.01, progress=lambda s, st, d: states.append((s, st)))
    assert not c.reconstructed and c.iptables
    patches = fake_apiserver.requests_to("PATCH", "/ephemeralcontainers$")
    assert [p.status for p in patches] == [503, 200]
    assert ("pod", "retry") in states and ("netfilter", "retry") in states
    assert len(fake_apiserver.captures) == 1  # the failed patch added nothing


def test_persistent_500_gives_up_as_unreachable(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.fail("GET", rf"/pods/{POD}$", times=100, status=500)
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD, retries=2, backoff=0.01)
    assert (e.value.kind, e.value.step, e.value.retryable) == ("unreachable", "pod", True)
    assert len(fake_apiserver.requests_to("GET", rf"/pods/{POD}$")) == 3
