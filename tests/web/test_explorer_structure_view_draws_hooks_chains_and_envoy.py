"""The structure view draws the hooks in kernel order, the chains with their policies, rule counts and hit counts,
jumps as edges, and policy routing and Envoy linked where they meet; rules and chains link to the rule table."""

from __future__ import annotations

import re

import pytest

from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_structure_graph_is_drawn_with_hits_and_links() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    page = client_for(user).get(f"/a/{analysis.slug}/structure/").content.decode()
    svg = page[page.index("<svg") : page.index("</svg>")]
    hooks = re.findall(r'<g id="hook:(\w+)" class="node">', svg)
    assert sorted(hooks) == sorted(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"])
    assert '<g id="chain:mangle:ISTIO_TPROXY" class="node">' in svg
    assert "policy ACCEPT" in svg and re.search(r"\d+ rules? · \d+ hit", svg)
    # a rule row links to its deep link, a chain to the filtered table
    assert f'xlink:href="/a/{analysis.slug}/rules/mangle/ISTIO_TPROXY/1"' in svg
    assert f'xlink:href="/a/{analysis.slug}/rules/?table=mangle&amp;chain=ISTIO_TPROXY"' in svg
    # policy routing and Envoy, linked to the rules: TPROXY -> the listener, original_src's mark -> no ip rule
    assert "policy routing" in svg and "listener virtualInbound" in svg
    assert "TPROXY → :15006" in svg
    assert "no ip rule for fwmark 1337" in svg
    assert "data-panzoom" in page
