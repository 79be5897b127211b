"""Helpers for the live-collection tests."""

from __future__ import annotations

import socket

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
