"""`manage.py load_examples` (run by `make run`) loads each bundled example once and prints the permalinks."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from meshviz.analyses import examples
from meshviz.analyses.models import Analysis

pytestmark = pytest.mark.django_db


def run(capture: Any, *args: str) -> str:
    out = StringIO()
    with capture(execute=True):  # the embedded (eager) mode runs the queued analyses on commit
        call_command("load_examples", *args, stdout=out)
    return out.getvalue()


def test_loads_the_four_examples_and_prints_their_permalinks(django_capture_on_commit_callbacks: Any) -> None:
    out = run(django_capture_on_commit_callbacks)

    analyses = list(Analysis.objects.order_by("created", "pk"))
    assert len(analyses) == len(examples.examples()) == 4
    assert all(a.state == Analysis.State.DONE for a in analyses)
    for example, analysis in zip(examples.examples(), analyses, strict=True):
        assert analysis.pod_ip == example.pod_ip
        assert f"http://127.0.0.1:8000/a/{analysis.slug}/" in out
        assert example.title in out
    assert "4 created, 0 already loaded" in out
    by_name = {e.name: a for e, a in zip(examples.examples(), analyses, strict=True)}
    policy_route = by_name["tproxy-missing-policy-route-503-uf"]
    assert policy_route.results is not None
    assert "ip rule add fwmark 1337 lookup 133" in str(policy_route.results["fix"])


def test_a_second_run_adds_none_and_prints_the_same_permalinks(django_capture_on_commit_callbacks: Any) -> None:
    first = run(django_capture_on_commit_callbacks)
    slugs = set(Analysis.objects.values_list("slug", flat=True))

    second = run(django_capture_on_commit_callbacks, "--base-url", "http://meshviz.test/")

    assert set(Analysis.objects.values_list("slug", flat=True)) == slugs
    assert "0 created, 4 already loaded" in second
    for slug in slugs:
        assert f"http://127.0.0.1:8000/a/{slug}/" in first
        assert f"http://meshviz.test/a/{slug}/" in second


def test_a_users_private_run_of_an_example_does_not_count_as_loaded(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(user)
    name = "tproxy-missing-policy-route-503-uf"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/new/example/{name}/")
    assert response.status_code == 302
    mine = Analysis.objects.get(slug=response["Location"].strip("/").split("/")[-1])
    assert mine.owner == user and not mine.public

    out = run(django_capture_on_commit_callbacks)

    assert Analysis.objects.count() == 5
    assert f"/a/{mine.slug}/" not in out
    assert "4 created, 0 already loaded" in out


def test_loaded_examples_are_public_and_owned_by_the_demo_user(django_capture_on_commit_callbacks: Any) -> None:
    call_command("demo_user", stdout=StringIO())

    run(django_capture_on_commit_callbacks)

    loaded = list(Analysis.objects.all())
    assert len(loaded) == 4
    assert all(a.public and a.owner is not None and a.owner.username == "demo" for a in loaded)
    assert all(a.origin == Analysis.Origin.EXAMPLE for a in loaded)
    anonymous = Client()
    assert anonymous.get(loaded[0].permalink_path).status_code == 200


def test_an_example_with_an_added_connection_no_longer_counts(django_capture_on_commit_callbacks: Any) -> None:
    run(django_capture_on_commit_callbacks)
    changed = Analysis.objects.order_by("created", "pk").first()
    assert changed is not None
    Analysis.objects.filter(pk=changed.pk).update(revision=2)

    out = run(django_capture_on_commit_callbacks)

    assert Analysis.objects.count() == 5
    assert "1 created, 3 already loaded" in out
    assert f"/a/{changed.slug}/" not in out
