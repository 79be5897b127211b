"""The OpenAPI schema documents the live-collection endpoints (plural kebab-case) with the errors shape."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_openapi_schema_lists_the_collection_endpoints(user: object) -> None:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/clusters/": {"get", "post"},
        "/api/v1/clusters/{id}/": {"get", "delete"},
        "/api/v1/clusters/{id}/check/": {"post"},
        "/api/v1/clusters/{id}/namespaces/": {"get"},
        "/api/v1/clusters/{id}/namespaces/{namespace}/pods/": {"get"},
        "/api/v1/clusters/{id}/pods/": {"get"},
        "/api/v1/collections/": {"get", "post"},
        "/api/v1/collections/{id}/": {"get"},
        "/api/v1/collections/{id}/recollect/": {"post"},
        "/api/v1/watched-pods/": {"get", "post"},
        "/api/v1/watched-pods/{id}/": {"get", "patch", "delete"},
    }.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, set(paths[path]))
    collect = paths["/api/v1/collections/"]["post"]
    assert "202" in collect["responses"] and "400" in collect["responses"]
    body = collect["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][body]["required"]) == {"cluster", "namespace", "pod"}
    pods = paths["/api/v1/clusters/{id}/namespaces/{namespace}/pods/"]["get"]["responses"]
    assert {"200", "403", "404", "502", "504"} <= set(pods)
    create = paths["/api/v1/clusters/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(create)
