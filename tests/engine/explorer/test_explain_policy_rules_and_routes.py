"""Every ip rule and route of the fixtures and examples is explained; the TPROXY policy route reads plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.engine.routing.explain import explain_policy_rule, explain_route
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules

from .helpers import EXAMPLE_NAMES, TPROXY_OK, evidence

IP_RULES = Path(__file__).resolve().parents[2] / "fixtures" / "ip-rules"


@pytest.mark.parametrize("path", sorted(IP_RULES.glob("*.txt")), ids=lambda p: p.name)
def test_every_fixture_policy_rule_is_explained(path: Path) -> None:
    rules = parse_ip_rules(path.read_text()).rules
    assert rules
    for r in rules:
        text = explain_policy_rule(r)
        assert text.startswith(f"priority {r.priority}: "), text
        assert " -> " in text


# Only the examples that carry `ip route` evidence (a parameter that always skips proves nothing).
ROUTED_EXAMPLES = [name for name in EXAMPLE_NAMES if evidence(name).ip_route]


def test_most_examples_carry_routes() -> None:
    assert len(ROUTED_EXAMPLES) >= len(EXAMPLE_NAMES) - 1


@pytest.mark.parametrize("name", ROUTED_EXAMPLES)
def test_every_example_route_is_explained(name: str) -> None:
    ev = evidence(name)
    routes = parse_ip_routes(ev.ip_route).routes
    assert routes
    for r in routes:
        assert explain_route(r).startswith("table ")


def test_tproxy_policy_rule_and_route() -> None:
    ev = evidence(TPROXY_OK)
    assert ev.ip_rule and ev.ip_route
    rule = next(r for r in parse_ip_rules(ev.ip_rule).rules if r.fwmark is not None)
    assert explain_policy_rule(rule) == "priority 32765: packets with fwmark 1337 (0x539) -> look up table 133"
    route = next(r for r in parse_ip_routes(ev.ip_route).routes if r.table == 133)
    assert explain_route(route) == "table 133: every destination is delivered locally (local route on lo) (scope host)"
