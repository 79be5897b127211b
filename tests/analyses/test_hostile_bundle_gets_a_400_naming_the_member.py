"""Through the API (multipart or application/gzip) and the new-analysis page, a hostile or malformed bundle gets a
400 naming the member and the problem, never a 500, and no analysis is created."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from tests.engine.archives import TOP, bundle_members, member, tar_gz, zeros_member
from tests.kube.fake_apiserver import istio_pod

pytestmark = pytest.mark.django_db

POD_JSON = json.dumps(istio_pod("hr2", tproxy=False))

HOSTILE = {
    "traversal": (
        tar_gz([*bundle_members({"pod.json": POD_JSON}), member("../escape.txt", b"x")]),
        "../escape.txt",
        "path traversal",
    ),
    "symlink": (
        tar_gz([*bundle_members({}), member(f"{TOP}/pod.json", kind=tarfile.SYMTYPE, link="/etc/shadow")]),
        f"{TOP}/pod.json",
        "symbolic link",
    ),
    "oversize": (
        tar_gz([*bundle_members({}), zeros_member(f"{TOP}/config_dump.json", 17 * 1024 * 1024)]),
        f"{TOP}/config_dump.json",
        "member limit",
    ),
    "too many": (tar_gz([member(f"{TOP}/f{i}", b"") for i in range(70)]), f"{TOP}/f64", "too many members"),
    "bomb": (tar_gz([zeros_member(f"{TOP}/z{i}", 15 * 1024 * 1024) for i in range(4)]), "", "gzip bomb"),
    "bad pod": (
        tar_gz(bundle_members({"pod.json": '{"kind": "Pod",\n "metadata": ['})),
        f"{TOP}/pod.json",
        "not valid JSON at line 2",
    ),
    "bad rules": (
        tar_gz(
            bundle_members(
                {"pod.json": POD_JSON, "iptables-legacy-save.txt": "*nat\n-A PREROUTING -j NOPE --bogus\nCOMMIT\n"}
            )
        ),
        f"{TOP}/iptables-legacy-save.txt",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("how", ["multipart", "gzip"])
def test_api_answers_400_naming_the_member(api: APIClient, case: str, how: str) -> None:
    data, name, problem = HOSTILE[case]
    if how == "multipart":
        upload = io.BytesIO(data)
        upload.name = "evil.tar.gz"
        response = api.post("/api/v1/analyses/", {"bundle": upload}, format="multipart")
    else:
        response = api.generic("POST", "/api/v1/analyses/", data, content_type="application/gzip")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    text = json.dumps(errors)
    assert name in text and problem in text
    assert Analysis.objects.count() == 0


def test_new_analysis_page_shows_the_member_and_problem(client: Client, user: object) -> None:
    client.force_login(user)  # type: ignore[arg-type]
    data, name, problem = HOSTILE["traversal"]
    upload = io.BytesIO(data)
    upload.name = "evil.tar.gz"
    response = client.post("/new/", {"bundle": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert name in page and problem in page
    assert Analysis.objects.count() == 0
