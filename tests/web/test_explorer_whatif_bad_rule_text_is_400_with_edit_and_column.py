"""A what-if edit whose rule text does not parse answers 400 naming the edit number and the column in the rule."""

from __future__ import annotations

import json

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db

GOOD = {"op": "insert", "table": "mangle", "chain": "ISTIO_INBOUND", "index": 1, "rule": "-p tcp --dport 22 -j RETURN"}
BAD_RULE = "-p tcp --dport 22 -m frobnicate -j RETURN"


def test_bad_rule_text_names_edit_and_column() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    bad = {**GOOD, "index": 2, "rule": BAD_RULE}
    edits = json.dumps([GOOD, bad])
    url = f"/a/{analysis.slug}/whatif/"

    response = client.get(url, {"edits": edits, "format": "json"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["source"] == "edit 2"
    assert error["text"] == BAD_RULE
    assert error["line"] == 1
    assert error["column"] == BAD_RULE.index("frobnicate") + 1  # the column points at the unknown match module
    assert "frobnicate" in error["message"]

    page = client.get(url, {"edits": edits})
    assert page.status_code == 400
    html = page.content.decode()
    assert '<strong class="error-source">edit 2</strong> line 1 column' in html
    assert "remove edit 2" in html  # the failing edit can be removed from the scratch copy

    # saving it is refused the same way
    saved = client.post(f"/a/{analysis.slug}/whatif/save/", {"edits": edits})
    assert saved.status_code == 400 and saved.json()["errors"][0]["source"] == "edit 2"


def test_edits_that_are_not_json_name_the_column() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    response = client_for(user).get(f"/a/{analysis.slug}/whatif/", {"edits": '[{"op": "insert",}]', "format": "json"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["source"] == "edits" and error["column"] == 18


def test_an_unknown_op_names_the_edit() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    response = client_for(user).get(
        f"/a/{analysis.slug}/whatif/", {"edits": json.dumps([GOOD, {"op": "explode"}]), "format": "json"}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["source"] == "edit 2" and "explode" in error["message"]
