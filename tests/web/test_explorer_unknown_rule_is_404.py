"""A deep link to a table, chain or index the pod does not have, or an unknown family, is a 404."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_unknown_table_chain_index_or_family_is_404() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    base = f"/a/{analysis.slug}/rules"
    assert client.get(f"{base}/mangle/ISTIO_TPROXY/1").status_code == 200
    n = len(client.get(f"{base}/", {"format": "json", "table": "mangle", "chain": "ISTIO_TPROXY"}).json()["rules"])
    for url in (
        f"{base}/nosuchtable/ISTIO_TPROXY/1",
        f"{base}/mangle/NO_SUCH_CHAIN/1",
        f"{base}/mangle/ISTIO_TPROXY/0",
        f"{base}/mangle/ISTIO_TPROXY/{n + 1}",
        f"{base}/mangle/ISTIO_TPROXY/1?family=ipv6",  # the example has no IPv6 rules
        f"{base}/mangle/ISTIO_TPROXY/1?family=ipx",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get("/a/no-such-slug-0000000000000000/rules/mangle/ISTIO_TPROXY/1").status_code == 404
