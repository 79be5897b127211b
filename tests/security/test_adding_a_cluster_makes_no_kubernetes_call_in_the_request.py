"""A kubeconfig whose server accepts but never answers hung `POST /api/v1/clusters/` past gunicorn's 30 s.  Adding
(and re-checking) a cluster now makes no Kubernetes call in the web request: a worker checks it afterwards."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from meshviz.clusters.models import Cluster
from tests.clusters.helpers import kubeconfig_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    from cryptography.fernet import Fernet

    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.MESHVIZ_COLLECT_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def test_create_and_check_answer_at_once_without_contacting_the_server(user: User) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[float] = []
    stop = threading.Event()

    def accept() -> None:  # accepts and never answers
        held = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(time.monotonic())
            held.append(conn)
        for conn in held:
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        api = APIClient()
        api.force_authenticate(user)
        config = kubeconfig_for(f"http://127.0.0.1:{server.getsockname()[1]}")
        started = time.monotonic()
        response = api.post("/api/v1/clusters/", {"name": "hang", "kubeconfig": config}, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["checked"] is None  # a worker will check it
        check = api.post(f"/api/v1/clusters/{response.json()['id']}/check/")
        assert check.status_code == 202
        assert time.monotonic() - started < 3
        time.sleep(0.5)
        assert accepted == []  # nothing connected from the web requests
        assert Cluster.objects.get().checked is None
    finally:
        stop.set()
        thread.join()
        server.close()
