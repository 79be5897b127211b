"""Every ip rule / ip route transcript we ship, and the shared corpus, parses cleanly.

Files in tests/fixtures/ip-rules/ are parsed with both parsers (a transcript
mixes `ip rule` and `ip route` sections, and each parser skips the other's).
The originals in ../shared/corpus/ip-rules/ are parsed too when that folder
is present (it is beside the project for every developer and in CI).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.routing.defaults import interfaces_from_routes, with_default_rules
from meshviz.engine.routing.flow import Flow
from meshviz.engine.routing.input import route_input
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.iproute2 import table_id
from meshviz.engine.routing.model import RouteType, RoutingConfig
from meshviz.engine.routing.output import route_output
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.snapshot import Snapshot

A = ipaddress.ip_address
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "ip-rules"
CORPUS = ROOT.parent / "shared" / "corpus" / "ip-rules"

FILES = sorted(p for p in FIXTURES.glob("*.txt"))
CORPUS_FILES = sorted(CORPUS.glob("*")) if CORPUS.is_dir() else []


def snapshot_of(text: str) -> Snapshot:
    rules = parse_ip_rules(text)
    routes = parse_ip_routes(text)
    assert not rules.errors and not routes.errors
    rule_list = rules.rules if rules.has_listing else with_default_rules(rules.rules)
    return Snapshot(
        routing=RoutingConfig(rules=rule_list, routes=routes.routes, table_names=routes.table_names),
        interfaces=interfaces_from_routes(routes.routes),
    )


def test_fixture_folder_has_files_and_sources() -> None:
    assert len(FILES) >= 4
    sources = (FIXTURES / "SOURCES.md").read_text()
    for f in FILES:
        assert f"`{f.name}`" in sources, f"{f.name} is not listed in SOURCES.md"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fixture_parses_without_errors(path: Path) -> None:
    text = path.read_text()
    rules = parse_ip_rules(text, source=path.name)
    routes = parse_ip_routes(text, source=path.name)
    assert not rules.errors, [str(e) for e in rules.errors]
    assert not routes.errors, [str(e) for e in routes.errors]
    assert rules.rules or routes.routes


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_shared_corpus_file_parses_without_errors(path: Path) -> None:
    text = path.read_text()
    assert not parse_ip_rules(text).errors
    assert not parse_ip_routes(text).errors


def test_corpus_copies_are_identical_to_the_shared_originals() -> None:
    if not CORPUS_FILES:
        pytest.skip(f"{CORPUS} is not present")
    for original in CORPUS_FILES:
        copy = FIXTURES / original.name
        if copy.exists():
            assert copy.read_bytes() == original.read_bytes()


def test_aws_vpc_cni_node_routes_pod_traffic_to_the_vpc_via_eni_1() -> None:
    text = (FIXTURES / "aws-vpc-cni-node-policy-routing.txt").read_text()
    rules = parse_ip_rules(text)
    assert [r.priority for r in rules.rules] == [0, 512, 1025, 1536]
    assert rules.rules[2].not_ and rules.rules[3].table == table_id("eni-1")
    snap = snapshot_of(text)
    node = Snapshot(
        routing=snap.routing, interfaces=snap.interfaces, sysctls=parse_sysctls("net.ipv4.ip_forward = 1").sysctls
    )
    # From the pod to another VPC address: `not ... to 10.0.0.0/16` does not match, `from <pod> lookup eni-1` does.
    vpc = route_input(node, Flow(dst=A("10.0.50.1"), src=A("10.0.97.30"), iif="aws8db0408c9a8"))
    assert vpc.ok and vpc.dev == "eth1" and vpc.table == table_id("eni-1")
    # From the pod to the internet: rule 1025 sends it to main, out of eth0 (where the node SNATs it).
    internet = route_input(node, Flow(dst=A("52.1.2.3"), src=A("10.0.97.30"), iif="aws8db0408c9a8"))
    assert internet.ok and internet.dev == "eth0" and internet.table == 254
    # To the pod: rule 512 picks main, which has the pod's veth route.
    to_pod = route_input(node, Flow(dst=A("10.0.97.30"), src=A("10.0.50.1"), iif="eth0"))
    assert to_pod.ok and to_pod.dev == "aws8db0408c9a8"


def test_istio_tproxy_transcript_delivers_marked_packets_locally() -> None:
    snap = snapshot_of((FIXTURES / "istio-tproxy-sidecar-pod.txt").read_text())
    v4 = route_input(snap, Flow(dst=A("10.96.0.10"), src=A("10.244.1.9"), iif="eth0", mark=1337))
    assert v4.ok and v4.type == RouteType.LOCAL and v4.table == 133
    v6 = route_output(snap, Flow(dst=A("fd00:10:96::a"), mark=1337))
    assert v6.ok and v6.type == RouteType.LOCAL and v6.table == 133
    plain = route_output(snap, Flow(dst=A("10.96.0.10")))
    assert (plain.dev, plain.src) == ("eth0", A("10.244.1.5"))


def test_istio_tproxy_commands_build_rule_and_table_133() -> None:
    text = (FIXTURES / "istio-tproxy-commands.txt").read_text()
    rules = parse_ip_rules(text)
    assert [(r.family, r.priority, r.fwmark, r.table) for r in rules.rules] == [
        (Family.IPV4, 32765, 1337, 133),
        (Family.IPV6, 32765, 1337, 133),
    ]
    routes = parse_ip_routes(text).routes
    assert [(str(r.dst), r.type, r.table) for r in routes] == [
        ("0.0.0.0/0", RouteType.LOCAL, 133),
        ("::/0", RouteType.LOCAL, 133),
    ]


def test_istio_ambient_inpod_mark_with_mask() -> None:
    snap = snapshot_of((FIXTURES / "istio-ambient-inpod-commands.txt").read_text())
    (rule,) = [r for r in snap.routing.rules if r.priority == 32764]
    assert (rule.fwmark, rule.fwmask, rule.table) == (0x111, 0xFFF, 100)
    d = route_output(snap, Flow(dst=A("10.1.2.3"), mark=0x3111))
    assert d.ok and d.type == RouteType.LOCAL and d.table == 100
