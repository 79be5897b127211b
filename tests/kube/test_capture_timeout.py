"""A capture container that never terminates ends in a timeout error within the collection's time limit."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_capture_timeout(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.never_terminate = True
    started = time.monotonic()
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD, timeout=2.0)
    elapsed = time.monotonic() - started
    assert (e.value.kind, e.value.step, e.value.retryable) == ("timeout", "netfilter", True)
    assert "meshviz-capture-" in e.value.message and "running" in e.value.message
    assert 1.5 <= elapsed < 6.0
    assert not fake_apiserver.requests_to("GET", "/log$")  # no half-read output
