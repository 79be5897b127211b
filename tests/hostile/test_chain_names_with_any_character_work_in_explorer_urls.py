"""A chain named `a/b` broke every explorer page and /api/v1/analyses/<slug>/rules/ (NoReverseMatch, a 500).
Chain names with any character iptables allows now give working pages and deep links."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from meshviz.analyses import examples
from tests.web.explorer_support import MISSING_ROUTE, analysed_iptables, client_for, explorer_user

pytestmark = pytest.mark.django_db

ODD = ["a/b", "x%y", "q?z#w", "end/"]


def _rules() -> str:
    example = examples.get(MISSING_ROUTE)
    assert example is not None
    base = example.analysis_fields()["iptables"]
    extra = "".join(f"-N {name}\n" for name in ODD) + "".join(
        f"-A PREROUTING -p udp --dport {5000 + i} -j {name}\n-A {name} -p udp -j RETURN\n" for i, name in enumerate(ODD)
    )
    assert base.startswith("* mangle\n")
    return "* mangle\n" + extra + base[len("* mangle\n") :]


def test_explorer_pages_and_api_work_with_odd_chain_names() -> None:
    user = explorer_user()
    analysis = analysed_iptables(user, _rules())
    client = client_for(user)
    for url in (f"/a/{analysis.slug}/rules/", f"/a/{analysis.slug}/structure/", f"/a/{analysis.slug}/compose/"):
        assert client.get(url).status_code == 200, url
    rules = client.get(f"/a/{analysis.slug}/rules/", {"format": "json"}).json()["rules"]
    odd_rows = [r for r in rules if r["chain"] in ODD]
    assert {r["chain"] for r in odd_rows} == set(ODD)
    for row in odd_rows:
        assert row["url"] == f"/a/{analysis.slug}/rules/mangle/{quote(row['chain'], safe='/')}/{row['index']}"
        page = client.get(row["url"])
        assert page.status_code == 200, (row["chain"], page.status_code)
        detail = client.get(row["url"], {"format": "json"}).json()
        assert detail["rule"]["chain"] == row["chain"]
    api = client.get(f"/api/v1/analyses/{analysis.slug}/rules/")
    assert api.status_code == 200
    for name in ODD:
        response = client.get(f"/api/v1/analyses/{analysis.slug}/rules/mangle/{quote(name, safe='/')}/1/")
        assert response.status_code == 200, (name, response.content[:300])
