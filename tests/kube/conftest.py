"""Fixtures for live-collection tests: a fake Kubernetes API server the real client talks to.

`fake_apiserver` yields a started `tests.kube.fake_apiserver.FakeApiServer` with `Scenario.istio()`
(see that module's docstring): `.kubeconfig` (YAML text, bearer token), `.scenario` (set or tweak it),
`.requests` (what it received), `.captures` (the capture containers it ran).  `api` is an ApiClient for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from meshviz.collect.kube import api_client
from tests.kube.fake_apiserver import FakeApiServer, Scenario


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(Scenario.istio()) as fake:
        yield fake


@pytest.fixture
def api(fake_apiserver: FakeApiServer) -> Iterator[k8s.ApiClient]:
    client = api_client(kubeconfig=fake_apiserver.kubeconfig, timeout=5.0)
    yield client
    client.close()
