"""Analyses can be deleted by their owner, on the page and through the API; nobody else can."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses import services
from meshviz.analyses.models import Analysis

from .helpers import POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_owner_deletes_through_the_api_and_others_cannot(user: User, other_user: User, api: APIClient) -> None:
    mine = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, owner=user)
    theirs = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, owner=other_user, public=True)
    assert api.delete(f"/api/v1/analyses/{theirs.slug}/").status_code == 403
    assert api.delete(f"/api/v1/analyses/{mine.slug}/").status_code == 204
    assert api.get(f"/api/v1/analyses/{mine.slug}/").status_code == 404
    assert list(Analysis.objects.all()) == [theirs]


def test_owner_deletes_on_the_page(user: User, other_user: User) -> None:
    analysis = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, owner=user)
    client = Client()
    client.force_login(user)
    assert 'action="/a/' + analysis.slug + '/delete/"' in client.get(analysis.permalink_path).content.decode()
    other = Client()
    other.force_login(other_user)
    assert other.post(f"/a/{analysis.slug}/delete/").status_code == 404
    response = client.post(f"/a/{analysis.slug}/delete/")
    assert response.status_code == 302 and not Analysis.objects.exists()


def test_anonymous_cannot_delete(user: User, anon_client: Any) -> None:
    analysis = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, owner=user, public=True)
    assert APIClient().delete(f"/api/v1/analyses/{analysis.slug}/").status_code in (401, 403)
    assert Analysis.objects.exists()
