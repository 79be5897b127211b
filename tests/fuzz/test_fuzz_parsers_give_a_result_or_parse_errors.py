"""Every engine parser, on any text: a result with ParseErrors and ParseWarnings as data — never an exception —
within the time and memory bound (issue 17: 12 inputs gave HTML 500s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import example, given, settings

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.envoy.lazy import index_config_dump, redact_config_dump_text
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.sysctl import parse_sysctls
from tests.fuzz import strategies as s
from tests.fuzz.harness import bounded, examples


def _check(target: str, parse: Callable[..., Any], text: str) -> None:
    result = bounded(target, text, lambda: parse(text, source=target))
    assert all(isinstance(e, ParseError) for e in result.errors)
    assert all(isinstance(w, ParseWarning) for w in result.warnings)
    for e in result.errors:
        assert e.line >= 0 and e.column >= 0 and e.message


@given(s.iptables_text)
@example(s.fan_out(20, False))
@example("*filter\n-A INPUT -j a/b\nCOMMIT\n")
@example("*filter\n-A INPUT -d \x00192.168.0.2/32 -j DROP\nCOMMIT\n")  # found by make fuzz: ValueError from inet_pton
@example("*nat\n-A OUTPUT -d 127.04294967296.0.1/32 -j RETURN\nCOMMIT\n")  # found by make fuzz: "octal" with a 9
@settings(max_examples=examples("iptables", 25))
def test_iptables(text: str) -> None:
    _check("iptables", parse_iptables, text)


@given(s.ip_rule_text)
@example("0: from all fwmark 0x" + "f" * 5000 + " lookup 133")
@settings(max_examples=examples("ip-rule", 25))
def test_ip_rule(text: str) -> None:
    _check("ip-rule", parse_ip_rules, text)


@given(s.ip_route_text)
@example("local default dev lo table " + "9" * 5000)
@settings(max_examples=examples("ip-route", 25))
def test_ip_route(text: str) -> None:
    _check("ip-route", parse_ip_routes, text)


@given(s.sysctl_text)
@example("net.ipv4.ip_forward = " + "9" * 5000)
@settings(max_examples=examples("sysctl", 25))
def test_sysctl(text: str) -> None:
    _check("sysctl", parse_sysctls, text)


@given(s.envoy_text)
@example("[" * 5000 + "]" * 5000)
@example('{"configs": [{"port_value": ' + "9" * 4400 + "}]}")
@example(
    '{"configs": [{"dynamic_listeners": [{"active_state": {"listener": {"filter_chains": [{"transport_socket": {"name": true}}]}}}]}]}'
)
@settings(max_examples=examples("envoy", 25))
def test_envoy(text: str) -> None:
    _check("envoy", parse_config_dump, text)


@given(s.envoy_text)
@example("[" * 5000 + "]" * 5000)
@example('{"configs": [' + "[" * 5000 + "]" * 5000 + "]}")
@example('{"configs": [{"@type": "x.ListenersConfigDump", "dynamic_listeners": [' + "[" * 5000 + "]" * 5000 + "]}]}")
@example('{"configs": [{"port_value": ' + "9" * 4400 + "}]}")
@settings(max_examples=examples("envoy", 25))
def test_envoy_index_is_the_eager_parse_or_agrees_with_it(text: str) -> None:
    index = bounded("envoy", text, lambda: index_config_dump(text.encode("utf-8", "surrogatepass"), source="envoy"))
    eager = parse_config_dump(text, source="envoy")
    if index.complete:
        assert index.errors == eager.errors
    else:
        assert index.errors == ()
        if not eager.errors:  # problems inside listeners and clusters wait for the eager parse
            assert [(x.name, x.state) for x in index.listeners] == [(x.name, x.state) for x in eager.config.listeners]
            assert [(x.name, x.state) for x in index.clusters] == [(x.name, x.state) for x in eager.config.clusters]
    assert index.redacted() == redact_config_dump_text(text)


@given(s.nftables_text)
@example("table inet t {\n\tchain c {\n\t\tip daddr " + "{ " * 3000 + "\n\t}\n}\n")
@example('{"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"match": 1}]}}]}')
@example("add rule inet t c index 99999999999999999999 accept\n")
@settings(max_examples=examples("nftables", 25))
def test_nftables(text: str) -> None:
    _check("nftables", parse_nftables, text)
