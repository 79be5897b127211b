from django.test import Client


def test_api_schema_returns_an_openapi_document(client: Client) -> None:
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "meshviz API"
    assert "paths" in document


def test_api_docs_serves_swagger_ui_pointing_at_the_schema(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger" in page.lower()
    # the init script (not inline: Content-Security-Policy) points the UI at the schema
    assert '<script src="/api/docs/?script="></script>' in page
    script = client.get("/api/docs/", {"script": ""}).content.decode()
    assert "/api/schema/" in script
