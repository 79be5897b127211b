"""A rule comment `<script>alert(1)</script>` is shown as text in the rule table, the rule's deep link, the
composer's steps, the structure graph and the diff: never as markup."""

from __future__ import annotations

import re

import pytest

from meshviz.analyses import examples
from tests.web.explorer_support import MISSING_ROUTE, analysed_example, analysed_iptables, client_for, explorer_user

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
OWN_SCRIPTS = [
    '<script src="/static/vendor/svg-pan-zoom/svg-pan-zoom.min.js" defer>',
    '<script src="/static/js/analysis.js" defer>',
    '<script src="/static/js/explorer.js" defer>',
]


def _inert(page: str) -> None:
    assert SCRIPT not in page
    assert "alert(1)" in page
    assert re.findall(r"<script\b[^>]*>", page, re.I) in (OWN_SCRIPTS, [])


def test_script_in_a_rule_comment_is_inert_everywhere() -> None:
    user = explorer_user()
    example = examples.get(MISSING_ROUTE)
    assert example is not None
    rules = example.evidence()["iptables"]
    line = next(ln for ln in rules.splitlines() if "-j TPROXY" in ln)
    commented = line.replace(" -j TPROXY", f' -m comment --comment "{SCRIPT}" -j TPROXY')
    analysis = analysed_iptables(user, rules.replace(line, commented))
    client = client_for(user)

    table = client.get(f"/a/{analysis.slug}/rules/").content.decode()
    _inert(table)
    assert ESCAPED in table

    rule = client.get(f"/a/{analysis.slug}/rules/", {"format": "json", "target": "TPROXY"}).json()["rules"][0]
    assert SCRIPT in rule["text"]  # JSON carries the text as data
    detail = client.get(rule["url"]).content.decode()
    _inert(detail)
    assert ESCAPED in detail

    compose = client.get(f"/a/{analysis.slug}/compose/", {"dport": "8083"}).content.decode()
    _inert(compose)
    svg = compose[compose.index("<svg") : compose.index("</svg>")]
    assert "<script" not in svg.lower()

    structure = client.get(f"/a/{analysis.slug}/structure/").content.decode()
    _inert(structure)

    plain = analysed_example(user)
    diff = client.get(f"/diff/{plain.slug}/{analysis.slug}/").content.decode()
    _inert(diff)
    assert ESCAPED in diff
