"""Bad composer input answers 400 with an error naming the field (JSON, fragment and page alike), never a 500."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("src", "10.1.1", "src must be an IP address"),
        ("dst", "fe80::1", "different families"),
        ("dport", "70000", "dport must be from 0 to 65535"),
        ("sport", "http", "sport must be a number"),
        ("proto", "sctp", "proto must be one of tcp, udp"),
        ("entry", "teleport", "entry must be one of iface, local, envoy"),
        ("iface", "eth9", "the pod has no interface 'eth9'"),
        ("mark", "-1", "mark must be from 0"),
    ],
)
def test_bad_field_is_named(field: str, value: str, says: str) -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/compose/"
    response = client.get(url, {field: value, "format": "json"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["source"] for e in errors] == [field]
    assert says in errors[0]["message"]

    page = client.get(url, {field: value})
    assert page.status_code == 400
    assert f'<strong class="error-source">{field}</strong>' in page.content.decode()
    fragment = client.get(url, {field: value, "fragment": "1"})
    assert fragment.status_code == 400 and "data-compose-errors" in fragment.content.decode()


def test_a_local_process_needs_uid_and_gid() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    response = client_for(user).get(
        f"/a/{analysis.slug}/compose/", {"entry": "local", "uid": "", "gid": "x", "format": "json"}
    )
    assert response.status_code == 400
    assert {e["source"] for e in response.json()["errors"]} == {"uid", "gid"}
