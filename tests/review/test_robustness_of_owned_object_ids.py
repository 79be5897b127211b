"""Ids of owned objects in form fields: a malformed id is a 404 like someone else's, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from meshviz.clusters.models import WatchedPod
from tests.review.support import World

pytestmark = pytest.mark.django_db


def test_someone_elses_watched_pod_id_is_a_404(world: World) -> None:
    c = Client()
    c.force_login(world.mallory)
    for op in ("delete", "toggle", "acknowledge", "nonsense"):
        assert c.post("/watched-pods/", {"id": str(world.watched.pk), "op": op}).status_code == 404
    assert c.post("/watched-pods/", {"op": "delete"}).status_code == 404
    assert WatchedPod.objects.filter(pk=world.watched.pk, enabled=True).exists()


def test_a_malformed_watched_pod_id_is_a_404_not_a_500(world: World) -> None:
    c = Client(raise_request_exception=False)
    c.force_login(world.mallory)
    assert c.post("/watched-pods/", {"id": "abc", "op": "delete"}).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/clusters/abc/", "/api/v1/collections/abc/", "/api/v1/watched-pods/abc/"])
def test_a_malformed_api_id_is_a_404(world: World, path: str) -> None:
    c = Client(raise_request_exception=False)
    c.force_login(world.alice)
    assert c.get(path).status_code == 404
