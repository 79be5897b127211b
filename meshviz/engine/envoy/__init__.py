"""The Envoy side of the engine: an Envoy config dump as data, and Envoy's decisions for a connection.

* `parse_config_dump(text, source)` → `EnvoyParseResult(config, errors, warnings)`
  (redacts secrets first; see `redact`);
* `redact_config_dump_text(text)` → (redacted text, count), for storing evidence;
* matching (`listener_for`, `handoff`, `inspect_connection`, `select_filter_chain`, `route_for`,
  `cluster_for`, `upstream_binding`, `upstream_target`) in `matching`;
* `summary(config)` → a JSON-friendly dict for the CLI and the web app.

Pure Python: no Django, Celery or Kubernetes imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the type checker; at run time a name's module is imported when the name is first used
    from meshviz.engine.envoy.clusters import ClusterSelection, cluster_for
    from meshviz.engine.envoy.filter_chains import (
        ConnInfo,
        FilterChainSelection,
        InspectedConnection,
        inspect_connection,
        select_filter_chain,
    )
    from meshviz.engine.envoy.lazy import redact_config_dump_text
    from meshviz.engine.envoy.listeners import ListenerSelection, handoff, listener_for, select_handoff, select_listener
    from meshviz.engine.envoy.model import (
        Address,
        BindConfig,
        Cluster,
        EnvoyConfig,
        EnvoyParseResult,
        FilterChain,
        FilterChainMatch,
        Listener,
        ListenerFilter,
        NetworkFilter,
        RouteConfiguration,
    )
    from meshviz.engine.envoy.parser import parse_config_dump
    from meshviz.engine.envoy.redact import MARKER
    from meshviz.engine.envoy.routes import RouteSelection, route_for
    from meshviz.engine.envoy.upstream import UpstreamBinding, UpstreamTarget, upstream_binding, upstream_target

#: Where each name lives: `import meshviz.engine.envoy.lazy` (the CLI's summary of a dump) then imports neither the
#: model's matching nor the eager parser.
_HOMES = {
    "ClusterSelection": "clusters",
    "cluster_for": "clusters",
    "ConnInfo": "filter_chains",
    "FilterChainSelection": "filter_chains",
    "InspectedConnection": "filter_chains",
    "inspect_connection": "filter_chains",
    "select_filter_chain": "filter_chains",
    "redact_config_dump_text": "lazy",
    "ListenerSelection": "listeners",
    "handoff": "listeners",
    "listener_for": "listeners",
    "select_handoff": "listeners",
    "select_listener": "listeners",
    "Address": "model",
    "BindConfig": "model",
    "Cluster": "model",
    "EnvoyConfig": "model",
    "EnvoyParseResult": "model",
    "FilterChain": "model",
    "FilterChainMatch": "model",
    "Listener": "model",
    "ListenerFilter": "model",
    "NetworkFilter": "model",
    "RouteConfiguration": "model",
    "parse_config_dump": "parser",
    "MARKER": "redact",
    "RouteSelection": "routes",
    "route_for": "routes",
    "UpstreamBinding": "upstream",
    "UpstreamTarget": "upstream",
    "upstream_binding": "upstream",
    "upstream_target": "upstream",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "MARKER",
    "Address",
    "BindConfig",
    "Cluster",
    "ClusterSelection",
    "ConnInfo",
    "EnvoyConfig",
    "EnvoyParseResult",
    "FilterChain",
    "FilterChainMatch",
    "FilterChainSelection",
    "InspectedConnection",
    "Listener",
    "ListenerFilter",
    "ListenerSelection",
    "NetworkFilter",
    "RouteConfiguration",
    "RouteSelection",
    "UpstreamBinding",
    "UpstreamTarget",
    "cluster_for",
    "handoff",
    "inspect_connection",
    "listener_for",
    "parse_config_dump",
    "redact_config_dump_text",
    "route_for",
    "select_filter_chain",
    "select_handoff",
    "select_listener",
    "summary",
    "upstream_binding",
    "upstream_target",
]


def _bind(bc: BindConfig | None) -> str | None:
    if bc is None or bc.source_address is None:
        return None
    return bc.source_address.describe()


def summary(config: EnvoyConfig) -> dict[str, Any]:
    """A JSON-serialisable overview: node, interception mode, listeners, clusters, problems."""
    listeners = []
    for lst in config.listeners:
        item: dict[str, Any] = {
            "name": lst.name,
            "address": lst.address.describe() if lst.address is not None else None,
            "state": lst.state,
            "origin": lst.origin,
            "bind_to_port": lst.bind_to_port,
            "use_original_dst": lst.use_original_dst,
            "transparent": lst.transparent,
            "traffic_direction": lst.traffic_direction,
            "listener_filters": [f.kind or f.name for f in lst.listener_filters],
            "filter_chains": len(lst.filter_chains),
            "default_filter_chain": lst.default_filter_chain is not None,
        }
        osrc = next((f for f in lst.listener_filters if f.kind == "envoy.filters.listener.original_src"), None)
        if osrc is not None:
            item["original_src_mark"] = osrc.mark or 0
        if lst.error_detail:
            item["error"] = lst.error_detail
        listeners.append(item)
    clusters = [
        {
            "name": c.name,
            "type": c.type,
            "state": c.state,
            "endpoints": len(c.endpoints),
            "endpoints_source": c.endpoints_source,
            "upstream_bind": _bind(c.upstream_bind_config),
        }
        for c in config.clusters
    ]
    return {
        "node_id": config.node_id,
        "node_cluster": config.node_cluster,
        "interception_mode": config.interception_mode,
        "istio_version": config.istio_version,
        "sections": list(config.sections),
        "counts": {
            "listeners": len(config.listeners),
            "listeners_active": sum(1 for x in config.listeners if x.state == "active"),
            "listeners_error": sum(1 for x in config.listeners if x.state == "error"),
            "clusters": len(config.clusters),
            "route_configs": len(config.route_configs),
            "endpoint_configs": len(config.endpoint_configs),
            "secrets": len(config.secrets),
        },
        "bootstrap_admin": config.bootstrap_admin.address.describe()
        if config.bootstrap_admin is not None and config.bootstrap_admin.address is not None
        else None,
        "bootstrap_upstream_bind": _bind(config.bootstrap_upstream_bind_config),
        "listeners": listeners,
        "clusters": clusters,
        "redactions": config.redactions,
        "errors": [e.to_dict() for e in config.errors],
        "warnings": [w.to_dict() for w in config.warnings],
    }
