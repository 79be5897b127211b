"""The cluster a route or TCP proxy names, weighted clusters, and how each is described."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshviz.engine.envoy.model import (
    HTTP_CONNECTION_MANAGER,
    TCP_PROXY,
    Cluster,
    EnvoyConfig,
    FilterChain,
    NetworkFilter,
    WeightedCluster,
)
from meshviz.engine.envoy.routes import RouteSelection, route_for

# --------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSelection:
    cluster_name: str | None
    cluster: Cluster | None
    explanation: tuple[str, ...] = ()
    #: For weighted clusters: all of them (the selection shows the heaviest).
    weighted_clusters: tuple[WeightedCluster, ...] = ()
    route: RouteSelection | None = None


def _pick_weighted(wcs: tuple[WeightedCluster, ...]) -> WeightedCluster | None:
    live = [w for w in wcs if w.weight > 0] or list(wcs)
    return max(live, key=lambda w: w.weight) if live else None


def _describe_cluster(name: str, cluster: Cluster | None) -> str:
    if cluster is None:
        return f"cluster {name} is not in the dump"
    if name == "BlackHoleCluster" or (
        cluster.type == "STATIC" and not cluster.endpoints and cluster.endpoints_source != "eds"
    ):
        return f"cluster {name} ({cluster.type}) has no endpoints: Envoy closes the connection"
    return f"cluster {name} ({cluster.type})"


def cluster_for(
    chain: FilterChain,
    host: str | None = None,
    path: str | None = None,
    *,
    config: EnvoyConfig,
    headers: Mapping[str, str] | None = None,
) -> ClusterSelection:
    """The cluster a filter chain sends the connection (or request) to.

    tcp_proxy: its `cluster` (or the heaviest of its weighted clusters).
    http_connection_manager: the route configuration (inline, or by RDS name
    from the dump) is matched with `host` and `path`.
    """
    expl: list[str] = []
    terminal: NetworkFilter | None = None
    for f in chain.filters:
        if f.kind in (TCP_PROXY, HTTP_CONNECTION_MANAGER):
            terminal = f
            break
    if terminal is None:
        expl.append(f"filter chain {chain.label} has neither tcp_proxy nor http_connection_manager")
        return ClusterSelection(None, None, tuple(expl))
    if terminal.kind == TCP_PROXY:
        tcp = terminal
        if tcp.cluster:
            cluster = config.cluster(tcp.cluster)
            expl.append(f"tcp_proxy ({tcp.name}) → {_describe_cluster(tcp.cluster, cluster)}")
            return ClusterSelection(tcp.cluster, cluster, tuple(expl))
        pick = _pick_weighted(tcp.weighted_clusters)
        if pick is None:
            expl.append(f"tcp_proxy ({tcp.name}) names no cluster")
            return ClusterSelection(None, None, tuple(expl))
        cluster = config.cluster(pick.name)
        expl.append(
            "tcp_proxy weighted clusters "
            + ", ".join(f"{w.name} ({w.weight})" for w in tcp.weighted_clusters)
            + f" → showing the heaviest: {_describe_cluster(pick.name, cluster)}"
        )
        return ClusterSelection(pick.name, cluster, tuple(expl), tcp.weighted_clusters)
    hcm = terminal
    rc = hcm.route_config
    if rc is None and hcm.route_config_name:
        rc = config.route_config(hcm.route_config_name)
        if rc is None:
            expl.append(
                f"http_connection_manager uses RDS route config {hcm.route_config_name}, which is not in the dump"
            )
            return ClusterSelection(None, None, tuple(expl))
        expl.append(f"http_connection_manager → RDS route config {rc.name}")
    elif rc is not None:
        expl.append(f"http_connection_manager → inline route config {rc.name or '(unnamed)'}")
    else:
        expl.append("http_connection_manager has no route configuration meshviz can read (scoped routes?)")
        return ClusterSelection(None, None, tuple(expl))
    if host is None:
        expl.append("an HTTP chain routes per request: give the Host (and path) to pick the cluster")
        return ClusterSelection(None, None, tuple(expl))
    sel = route_for(rc, host, path or "/", headers)
    expl.extend(sel.explanation)
    if sel.route is None:
        return ClusterSelection(None, None, tuple(expl), route=sel)
    action = sel.route.action
    if action.kind == "cluster" and action.cluster:
        cluster = config.cluster(action.cluster)
        expl.append(f"→ {_describe_cluster(action.cluster, cluster)}")
        return ClusterSelection(action.cluster, cluster, tuple(expl), route=sel)
    if action.kind == "weighted_clusters":
        pick = _pick_weighted(action.weighted_clusters)
        if pick is not None:
            cluster = config.cluster(pick.name)
            expl.append(f"→ weighted; showing the heaviest: {_describe_cluster(pick.name, cluster)}")
            return ClusterSelection(pick.name, cluster, tuple(expl), action.weighted_clusters, route=sel)
    if action.kind == "cluster_header":
        value = {k.lower(): v for k, v in (headers or {}).items()}.get((action.cluster_header or "").lower())
        if value:
            cluster = config.cluster(value)
            expl.append(f"→ header {action.cluster_header} names {_describe_cluster(value, cluster)}")
            return ClusterSelection(value, cluster, tuple(expl), route=sel)
        expl.append(f"→ the cluster is named by request header {action.cluster_header}, which was not given")
        return ClusterSelection(None, None, tuple(expl), route=sel)
    expl.append(f"→ the route does not forward to a cluster ({action.describe()})")
    return ClusterSelection(None, None, tuple(expl), route=sel)
