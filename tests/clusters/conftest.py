"""Live-collection tests run like a deployment: DEBUG is off (pytest-django), so a real Fernet key is set.

`fake_apiserver` is the collection library's fake Kubernetes API server (tests/kube/conftest.py), reused;
`cluster` is `user`'s connection to it (kubeconfig stored encrypted, capabilities checked).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User

from meshviz.clusters import services
from meshviz.clusters.models import Cluster
from tests.kube.conftest import fake_apiserver
from tests.kube.fake_apiserver import FakeApiServer

#: One key for the whole run, so a worker process started by a test can be given the same one.
ENCRYPTION_KEY = Fernet.generate_key().decode()

__all__ = ["ENCRYPTION_KEY", "cluster", "encryption_key", "fake_apiserver"]


@pytest.fixture(autouse=True)
def encryption_key(settings: Any) -> str:
    settings.MESHVIZ_ENCRYPTION_KEY = ENCRYPTION_KEY
    # keep failing tests fast: one library-level retry, one Celery-level retry
    settings.MESHVIZ_COLLECT_RETRIES = 1
    settings.MESHVIZ_COLLECT_TASK_RETRIES = 1
    settings.MESHVIZ_COLLECT_TIMEOUT = 30.0
    return ENCRYPTION_KEY


@pytest.fixture
def cluster(user: User, fake_apiserver: FakeApiServer) -> Cluster:
    return services.create_cluster(owner=user, name="kind", in_cluster=False, kubeconfig=fake_apiserver.kubeconfig)


@pytest.fixture(autouse=True)
def loopback_api_server_allowed(settings: Any) -> None:
    """The fake API server listens on loopback, which meshviz refuses by default (netguard): allow it here."""
    settings.MESHVIZ_COLLECT_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
