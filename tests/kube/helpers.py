"""Shared bits for the live-collection tests."""

from __future__ import annotations

from meshviz.collect.collect import Collection
from meshviz.engine.pipeline.evidence import Evidence

REDIRECT_NS, TPROXY_NS = "hr2", "hr2-tproxy"
POD = "geo-5c54dcd5bd-z5ghf"
CLIENT = "10.244.1.7:43210"


def evidence(c: Collection) -> Evidence:
    """The collection as the engine's evidence (what the web app builds from it)."""
    return Evidence(
        iptables=c.iptables,
        pod_ip=c.pod_ip,
        ip_rule=c.ip_rule or None,
        ip_route=c.ip_route or None,
        sysctl=c.sysctl or None,
        envoy=c.envoy_config_dump,
        proxy_uid=c.proxy_uid,
        proxy_gid=c.proxy_gid,
        app_ports=tuple(c.app_ports),
        pod_name=c.pod_name,
        namespace=c.namespace,
    )
