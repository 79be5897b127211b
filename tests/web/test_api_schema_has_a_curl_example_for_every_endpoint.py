"""Every operation of the OpenAPI schema (and so of Swagger UI) carries a curl example; creating and reading an
analysis are described separately."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


def test_every_operation_has_a_curl_example(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [(p, m, op) for p, ms in schema["paths"].items() for m, op in ms.items() if m in METHODS]
    assert len(operations) > 20
    for path, method, op in operations:
        samples = op.get("x-codeSamples") or []
        assert samples and samples[0]["source"].startswith("curl "), (path, method)
        assert "```sh\ncurl " in op["description"], (path, method)
        if method != "get":
            assert f"-X {method.upper()}" in samples[0]["source"], (path, method)


def test_create_and_read_have_their_own_descriptions(client: Client) -> None:
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    create = paths["/api/v1/analyses/"]["post"]["description"]
    read = paths["/api/v1/analyses/{slug}/"]["get"]["description"]
    assert create.split("\n")[0] != read.split("\n")[0]
    assert "Post the pod's evidence" in create and '-d \'{"pod_ip"' in create
    assert "poll it" in read
    assert "verdicts" in paths["/api/v1/analyses/{slug}/verdicts/"]["get"]["description"]
