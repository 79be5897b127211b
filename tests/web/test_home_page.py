from django.test import Client


def test_home_page_says_meshviz_is_running_and_links_to_the_api(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "meshviz is running" in page
    assert 'href="/api/schema/"' in page
    assert 'href="/api/docs/"' in page


def test_home_page_loads_the_stylesheet_from_static(client: Client) -> None:
    page = client.get("/").content.decode()

    assert "/static/css/meshviz.css" in page
