"""Explorer views get analyses only through meshviz.analyses.access: another user's private analysis is a 404 on
every view (an anonymous visitor is sent to the login page first), and a public one is readable by anyone."""

from __future__ import annotations

import json

import pytest

from meshviz.analyses.models import Analysis
from tests.web.explorer_support import POLICY_ROUTE_EDITS, analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def _views(slug: str, other: str) -> list[str]:
    return [
        f"/a/{slug}/structure/",
        f"/a/{slug}/rules/",
        f"/a/{slug}/rules/mangle/ISTIO_TPROXY/1",
        f"/a/{slug}/compose/",
        f"/a/{slug}/whatif/",
        f"/a/{slug}/diff/",
        f"/diff/{slug}/{other}/",
        f"/diff/{other}/{slug}/",
    ]


def test_private_analysis_is_404_for_other_users_and_login_first_for_visitors() -> None:
    owner, stranger = explorer_user("owner"), explorer_user("stranger")
    private = analysed_example(owner)
    theirs = analysed_example(stranger)
    as_stranger = client_for(stranger)
    for url in _views(private.slug, theirs.slug):
        assert as_stranger.get(url).status_code == 404, url
    from django.test import Client

    anon = Client()
    response = anon.get(f"/a/{private.slug}/rules/")
    assert response.status_code == 302 and "/login" in response["Location"]
    saved = as_stranger.post(f"/a/{private.slug}/whatif/save/", {"edits": json.dumps(POLICY_ROUTE_EDITS)})
    assert saved.status_code == 404
    assert Analysis.objects.count() == 2


def test_public_analysis_is_readable_by_anyone() -> None:
    owner, reader = explorer_user("owner"), explorer_user("reader")
    public = analysed_example(owner)
    public.public = True
    public.save(update_fields=["public"])
    from django.test import Client

    assert Client().get(f"/a/{public.slug}/rules/").status_code == 200
    assert Client().get(f"/a/{public.slug}/rules/mangle/NO_SUCH_CHAIN/1").status_code == 404  # not a login prompt
    assert client_for(reader).get(f"/a/{public.slug}/structure/").status_code == 200
    # a reader's saved what-if copy is theirs, derived from the public analysis
    saved = client_for(reader).post(f"/a/{public.slug}/whatif/save/", {"edits": json.dumps(POLICY_ROUTE_EDITS)})
    copy = Analysis.objects.get(slug=saved["Location"].strip("/").split("/")[-1])
    assert copy.owner == reader and copy.derived_from == public and not copy.public
