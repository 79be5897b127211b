"""Without connections given: one inbound per application port (app_ports, else the dump's inbound clusters,
else 8080) from a representative client, plus one outbound from uid/gid 1000 to a documentation address."""

from __future__ import annotations

import pytest

from meshviz.analyses import services
from meshviz.analyses.models import Analysis

from .helpers import ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

OUTBOUND = {"direction": "outbound", "dst": "203.0.113.10:443", "app_uid": 1000, "app_gid": 1000}


def inbound(port: int) -> dict[str, object]:
    return {"direction": "inbound", "client": "10.255.0.1:40000", "port": port}


def test_app_ports_come_first() -> None:
    a = Analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, app_ports=[9080, 9443], envoy_config_dump=ENVOY_REDIRECT)
    assert services.default_connections(a) == [inbound(9080), inbound(9443), OUTBOUND]


def test_inbound_cluster_ports_of_the_envoy_dump_otherwise() -> None:
    a = Analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, envoy_config_dump=ENVOY_REDIRECT)
    assert services.default_connections(a) == [inbound(8083), OUTBOUND]


def test_8080_without_ports_or_dump() -> None:
    a = Analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    assert services.default_connections(a) == [inbound(8080), OUTBOUND]


@pytest.mark.django_db
def test_given_connections_replace_the_defaults() -> None:
    conns = [{"direction": "inbound", "client": "192.0.2.1:1234", "port": 8083}]
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, connections=conns)
    assert a.connections == conns
