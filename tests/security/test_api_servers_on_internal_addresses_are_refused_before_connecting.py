"""Kubeconfigs pointing at loopback (Redis on 6379, PostgreSQL on 5432, the app itself), link-local, cloud metadata
or (unless allowed) private addresses are refused before any connection is made."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from meshviz.clusters import connect, netguard, services
from meshviz.clusters.models import Cluster
from meshviz.collect.errors import CollectError
from tests.clusters.helpers import kubeconfig_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _key(settings: Any) -> None:
    from cryptography.fernet import Fernet

    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.MESHVIZ_COLLECT_ALLOWED_NETWORKS = []
    settings.MESHVIZ_COLLECT_ALLOW_PRIVATE = False


@pytest.mark.parametrize(
    ("server", "why"),
    [
        ("https://127.0.0.1:6379", "loopback"),
        ("https://[::1]:5432", "loopback"),
        ("https://localhost:8000", "loopback"),
        ("http://169.254.169.254", "metadata"),
        ("http://metadata.google.internal", "metadata"),
        ("https://169.254.10.1:443", "link-local"),
        ("https://[fe80::1]:443", "link-local"),
        ("https://10.0.0.1:6443", "private"),
        ("https://192.168.1.10:6443", "private"),
        ("https://[fd00::10]:6443", "private"),
        ("https://[::ffff:127.0.0.1]:6443", "loopback"),
        ("https://0.0.0.0:6443", "unicast"),
    ],
)
def test_refused_servers_are_400_and_not_stored(user: User, server: str, why: str) -> None:
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": kubeconfig_for(server)}, format="json")
    assert response.status_code == 400, response.content
    (err,) = response.json()["errors"]
    assert err["source"] == "kubeconfig" and "is refused" in err["message"] and why in err["message"]
    assert not Cluster.objects.exists()


@override_settings(MESHVIZ_COLLECT_ALLOW_PRIVATE=True)
def test_private_addresses_are_allowed_by_the_operator_setting() -> None:
    netguard.check_literal("https://10.0.0.1:6443")
    with pytest.raises(CollectError):
        netguard.check_literal("https://127.0.0.1:6443")  # loopback never


def test_a_name_resolving_to_loopback_is_refused_before_any_connection(user: User) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        # "localhost." (a name, resolved at connect time) is stored... then refused in the worker before connecting
        with override_settings(MESHVIZ_COLLECT_ALLOWED_NETWORKS=["127.0.0.0/8"]):
            cluster = services.create_cluster(
                owner=user,
                name="c",
                in_cluster=False,
                kubeconfig=kubeconfig_for(f"https://loopback.test:{port}"),
                check=False,
            )
        with pytest.raises(CollectError) as caught:
            real = socket.getaddrinfo
            socket.getaddrinfo = lambda host, *a, **k: real("127.0.0.1", *a, **k)  # type: ignore[assignment]
            try:
                connect.api_for(cluster)
            finally:
                socket.getaddrinfo = real  # type: ignore[assignment]
        assert "loopback" in caught.value.message
    finally:
        thread.join()
        listener.close()
    assert accepted == []
