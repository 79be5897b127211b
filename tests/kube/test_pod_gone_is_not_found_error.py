"""A deleted pod is a not_found error of the "pod" step, not retried, and nothing is written."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_pod_gone_is_not_found_error(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.gone.add((REDIRECT_NS, POD))
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD)
    assert (e.value.kind, e.value.step, e.value.retryable) == ("not_found", "pod", False)
    assert POD in e.value.message
    assert len(fake_apiserver.requests_to("GET", rf"/pods/{POD}$")) == 1  # 404 is never retried
    assert fake_apiserver.writes() == []
    assert e.value.to_dict() == {"kind": "not_found", "step": "pod", "message": e.value.message, "retryable": False}
