"""The Clusters page: an in-cluster connection where meshviz runs outside a cluster is refused before anything is
saved, in plain words with the fix; a failed check says what to do; the page shows credentials that may only read
pods and exec into them."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client

from meshviz.clusters.models import Cluster
from tests.conftest import logged_in

pytestmark = pytest.mark.django_db


def test_in_cluster_outside_a_cluster_is_not_saved(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    user.is_staff = True
    user.save()
    c = Client()
    c.force_login(user)
    response = c.post("/clusters/", {"name": "self", "in_cluster": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "not running inside a Kubernetes cluster" in page and "Upload a kubeconfig instead" in page
    assert not Cluster.objects.exists()


def test_the_page_has_a_least_privilege_rbac_example(user: User) -> None:
    page = logged_in(user).get("/clusters/").content.decode()
    assert 'id="rbac-example"' in page
    start = page.index('<pre id="rbac-yaml">') + len('<pre id="rbac-yaml">')
    docs = list(yaml.safe_load_all(page[start : page.index("</pre>", start)]))
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {("pods", "get"), ("pods", "list"), ("pods/exec", "create")}
    assert '<label for="id_kubeconfig">' in page


def test_a_failed_check_says_what_to_do(user: User) -> None:
    cluster = Cluster.objects.create(
        owner=user,
        name="prod",
        kind=Cluster.Kind.KUBECONFIG,
        check_error={"kind": "forbidden", "step": "capabilities", "message": "pods is forbidden", "retryable": False},
    )
    page = logged_in(user).get(f"/clusters/{cluster.pk}/").content.decode()
    assert "The check failed (forbidden)" in page and "What to do:" in page and "RBAC example" in page
