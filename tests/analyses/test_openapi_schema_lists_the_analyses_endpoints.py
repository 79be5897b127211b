from __future__ import annotations

from pathlib import Path

from django.core.management import call_command
from django.test import Client


def test_schema_documents_every_v1_endpoint(client: Client) -> None:
    document = client.get("/api/schema/", {"format": "json"}).json()
    paths = document["paths"]
    assert set(paths["/api/v1/analyses/"]) == {"get", "post"}
    assert set(paths["/api/v1/analyses/{slug}/"]) == {"get", "delete"}  # delete: owner only
    assert set(paths["/api/v1/analyses/{slug}/connections/"]) == {"post"}
    assert set(paths["/api/v1/analyses/{slug}/comparison/"]) == {"get"}
    assert set(paths["/api/v1/analyses/{slug}/fix/"]) == {"get"}
    assert set(paths["/api/v1/analyses/{slug}/rerun/"]) == {"post"}
    assert set(paths["/api/v1/analyses/{slug}/sharing/"]) == {"get", "post"}
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Api-Key mvz_...` (create keys on your account page)",
    }
    create = paths["/api/v1/analyses/"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(create["requestBody"]["content"])
    assert {"201", "400", "413"} <= set(create["responses"])


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
