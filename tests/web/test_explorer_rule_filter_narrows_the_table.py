"""The rule table filters by table, chain, target and text (query parameters, so a filtered view is a link)."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_filters_by_table_chain_target_and_text() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/rules/"
    everything = client.get(url, {"format": "json"}).json()["rules"]

    by_target = client.get(url, {"format": "json", "target": "TPROXY"}).json()["rules"]
    assert by_target and all(r["target"] == "TPROXY" for r in by_target)
    assert len(by_target) == sum(1 for r in everything if r["target"] == "TPROXY")

    by_chain = client.get(url, {"format": "json", "table": "nat", "chain": "ISTIO_OUTPUT"}).json()["rules"]
    assert [r["index"] for r in by_chain] == list(range(1, len(by_chain) + 1))
    assert {(r["table"], r["chain"]) for r in by_chain} == {("nat", "ISTIO_OUTPUT")}

    by_text = client.get(url, {"format": "json", "q": "1337"}).json()["rules"]
    assert by_text and all("1337" in (r["text"] + r["explanation"]) for r in by_text)
    assert len(by_text) < len(everything)

    nothing = client.get(url, {"q": "no-such-rule-text"})
    assert nothing.status_code == 200
    assert "No rule matches this filter." in nothing.content.decode()
    # the filter form shows what is applied
    page = client.get(url, {"target": "TPROXY"}).content.decode()
    assert "<option selected>TPROXY</option>" in page
    assert f"{len(by_target)} of {len(everything)} rules" in page
