"""A side without `ip rule` output is compared with the kernel's default rules, not with nothing; a side without
`ip route` output leaves routes uncompared. Both are said in the diff's notes."""

from __future__ import annotations

from dataclasses import replace

from meshviz.engine.explorer.diff import diff_evidence

from .helpers import REDIRECT, TPROXY_OK, evidence


def test_missing_ip_rule_side_shows_only_the_policy_rule_that_was_added() -> None:
    redirect, tproxy = evidence(REDIRECT), evidence(TPROXY_OK)
    assert not redirect.ip_rule and tproxy.ip_rule

    d = diff_evidence(redirect, tproxy)

    assert d.ip_rules.removed == ()
    assert len(d.ip_rules.added) == 1 and "1337" in d.ip_rules.added[0] and "133" in d.ip_rules.added[0]
    assert "before: no `ip rule` output; compared with a new namespace's default rules" in d.notes


def test_missing_ip_route_side_is_not_compared_and_says_so() -> None:
    tproxy = evidence(TPROXY_OK)
    assert tproxy.ip_route

    d = diff_evidence(replace(tproxy, ip_route=None), tproxy)

    assert d.routes.added == () and d.routes.removed == ()
    assert "before: no `ip route` output; its routes are unknown, so they are not compared" in d.to_dict()["notes"]
