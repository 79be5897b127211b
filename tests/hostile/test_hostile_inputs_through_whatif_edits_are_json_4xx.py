"""The same hostile inputs through what-if edits (`?edits=` and `POST /api/v1/analyses/<slug>/what-ifs/`): deep
nesting, huge numbers, odd types, NULs, odd chain names — a JSON 400 naming the edit, or a result; never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db

HOSTILE: list[Any] = [
    [{"op": "set_text", "kind": "envoy", "text": "[" * 3000 + "]" * 3000}],
    [{"op": "set_text", "kind": "envoy", "text": '{"configs": [{"port_value": ' + "9" * 5000 + "}]}"}],
    [{"op": "set_text", "kind": "envoy", "text": json.dumps({"configs": [{"transport_socket": {"name": True}}]})}],
    [{"op": "set_text", "kind": "iptables", "text": "*filter\n-A INPUT -d \x00192.168.0.2/32 -j DROP\nCOMMIT\n"}],
    [{"op": "set_text", "kind": "iptables", "text": "*filter\n:a/b - [0:0]\n-A INPUT -j a/b\nCOMMIT\n"}],
    [{"op": "sysctl", "key": "net.ipv4.ip_forward", "value": "9" * 5000}],
    [{"op": "envoy_original_src", "mark": 2**70}],
    [{"op": "insert", "table": "mangle", "chain": "PREROUTING", "index": 2**70, "rule": "-j ACCEPT"}],
    [{"op": "set_text", "kind": {"nested": True}, "text": 7}],
    [[[[[]]]]],
]


@pytest.mark.parametrize("edits", HOSTILE)
def test_hostile_edits_are_a_json_answer_never_a_500(edits: Any) -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    page = client_for(user).get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": json.dumps(edits)})
    assert page.status_code in (200, 400), page.content[:300]
    assert page["Content-Type"].startswith("application/json")
    if page.status_code == 400:
        assert page.json()["errors"]
    api = APIClient()
    api.force_authenticate(user)
    response = api.post(f"/api/v1/analyses/{analysis.slug}/what-ifs/", {"edits": edits}, format="json")
    assert response.status_code in (200, 400), response.content[:300]
    assert response["Content-Type"].startswith("application/json")


def test_deeply_nested_edits_parameter_is_400() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    page = client_for(user).get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": "[" * 5000 + "]" * 5000})
    assert page.status_code == 400 and "nested deeper than" in json.dumps(page.json())
