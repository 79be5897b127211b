"""Helpers for the live-collection tests."""

from __future__ import annotations

import socket
from typing import Any

from rest_framework.test import APIClient

from meshviz.clusters.models import Cluster

TOKEN = "meshviz-test-token-0123456789abcdef"


def closed_port() -> int:
    """A localhost port nothing listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def kubeconfig_for(server: str, *, token: str = TOKEN, context: str = "test") -> str:
    """A kubeconfig with one context and a bearer token (plain http: nothing to verify)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: test-cluster
  cluster:
    server: {server}
users:
- name: test-user
  user:
    token: {token}
contexts:
- name: {context}
  context:
    cluster: test-cluster
    user: test-user
current-context: {context}
"""


def collect_through_api(api: APIClient, capture: Any, cluster: Cluster, namespace: str, pod: str) -> dict[str, Any]:
    """POST a collection of `namespace/pod` with `capture` (django_capture_on_commit_callbacks) running the on-commit
    callbacks, so the embedded mode collects at once; returns the job as the API shows it afterwards."""
    with capture(execute=True):
        response = api.post(
            "/api/v1/collections/", {"cluster": cluster.pk, "namespace": namespace, "pod": pod}, format="json"
        )
    assert response.status_code == 202, response.content
    return dict(api.get(response.json()["url"]).json())
