"""`POST /api/v1/clusters/ {"in_cluster": true}` with an ordinary user's key returned 201, handing anyone meshviz's
own service account (which can exec into every pod).  Now only staff, or members of MESHVIZ_IN_CLUSTER_GROUP."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from rest_framework.test import APIClient

from meshviz.clusters import connect, services
from meshviz.clusters.models import Cluster
from meshviz.collect.errors import CollectError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _key(settings: Any) -> None:
    from cryptography.fernet import Fernet

    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()


def _api(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_ordinary_user_gets_403_and_nothing_is_stored(user: User) -> None:
    response = _api(user).post("/api/v1/clusters/", {"name": "self", "in_cluster": True}, format="json")
    assert response.status_code == 403
    (err,) = response.json()["errors"]
    assert err["source"] == "in_cluster" and "staff" in err["message"]
    assert not Cluster.objects.exists()


def test_ordinary_user_is_refused_on_the_page_too(user: User) -> None:
    client = Client()
    client.force_login(user)
    response = client.post("/clusters/", {"name": "self", "in_cluster": "on"})
    assert response.status_code == 400 and "MESHVIZ_IN_CLUSTER_GROUP" in response.content.decode()
    assert not Cluster.objects.exists()


def test_staff_may_use_the_service_account(user: User) -> None:
    user.is_staff = True
    user.save()
    assert _api(user).post("/api/v1/clusters/", {"name": "self", "in_cluster": True}, format="json").status_code == 201


@override_settings(MESHVIZ_IN_CLUSTER_GROUP="cluster-operators")
def test_members_of_the_configured_group_may_use_it(user: User, other_user: User) -> None:
    user.groups.add(Group.objects.create(name="cluster-operators"))
    assert _api(user).post("/api/v1/clusters/", {"name": "self", "in_cluster": True}, format="json").status_code == 201
    assert (
        _api(other_user).post("/api/v1/clusters/", {"name": "x", "in_cluster": True}, format="json").status_code == 403
    )


def test_an_existing_connection_stops_working_when_the_right_is_withdrawn(user: User) -> None:
    user.is_staff = True
    user.save()
    cluster = services.create_cluster(owner=user, name="self", in_cluster=True, check=False)
    user.is_staff = False
    user.save()
    cluster.refresh_from_db()
    with pytest.raises(CollectError) as caught:
        connect.api_for(cluster)
    assert caught.value.kind == "forbidden"
