import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_visitor_home_explains_what_meshviz_answers_and_offers_login(anon_client: Client) -> None:
    response = anon_client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "meshviz is running" not in page
    assert "127.0.0.6" in page
    assert "Log in to start" in page
    assert 'href="/api/docs/"' in page  # in the header


def test_home_page_loads_the_stylesheet_from_static(client: Client) -> None:
    page = client.get("/").content.decode()

    assert "/static/css/meshviz.css" in page
