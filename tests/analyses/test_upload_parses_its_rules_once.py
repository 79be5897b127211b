"""Issue 15: an upload's rules are parsed once - by its validation - and that parse is the one its stories, the
REDIRECT/TPROXY comparison, the fix and the pages read (a node-sized ruleset was parsed five times per upload)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from meshviz.engine.netfilter import parser as netfilter_parser
from meshviz.engine.pipeline import parsecache, rulescache
from meshviz.web import parsed

from .helpers import REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_an_upload_parses_its_rules_once_for_validation_stories_comparison_fix_and_pages(
    create: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    parsecache.cache_clear()
    rulescache.rules_cache_clear()
    parsed.clear()
    rules = REDIRECT_RULES + "# parsed once\n"  # a text no other test parsed
    parses: list[str] = []
    real = netfilter_parser.parse_iptables

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        if text == rules:
            parses.append(kwargs.get("source", ""))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(netfilter_parser, "parse_iptables", counting)
    response = create(iptables=rules)
    assert response.status_code == 201, response.content
    analysis = Analysis.objects.get(slug=response.json()["slug"])
    assert analysis.state == Analysis.State.DONE
    assert analysis.results["comparison"] and analysis.results["fix"]
    assert parsed.iptables(analysis) is rulescache.iptables_once(rules)  # the pages' parse is the same one
    assert parses == ["iptables"]
