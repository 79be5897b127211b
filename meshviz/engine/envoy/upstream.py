"""Envoy's upstream connection: its source binding (original_src, upstream_bind_config, the listener's mark) and its
target (the cluster's endpoint or the original destination).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshviz.engine.core.model import IPAddress
from meshviz.engine.envoy.listeners import _hp, _ip
from meshviz.engine.envoy.model import (
    HTTP_CONNECTION_MANAGER,
    ORIGINAL_SRC,
    BindConfig,
    Cluster,
    Endpoint,
    EnvoyConfig,
    FilterChain,
    Listener,
)

# --------------------------------------------------------------------------
# Upstream connection
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamBinding:
    """How Envoy binds the upstream socket before connecting.

    `bind_ip` None means Envoy does not bind: the kernel picks the source
    address from the route to the destination.  `bind_port` 0 means an
    ephemeral port.  `transparent` is IP_TRANSPARENT (needed to bind an
    address that is not local, as original_src does); `mark` is the SO_MARK
    value (0: none set).  `via` says which configuration decided it.
    """

    bind_ip: IPAddress | None
    bind_port: int
    transparent: bool
    mark: int
    via: str
    explanation: tuple[str, ...] = ()


def _from_bind_config(bc: BindConfig, via: str, what: str) -> UpstreamBinding | None:
    if bc.source_address is None or bc.source_address.ip is None:
        return None
    ip = bc.source_address.ip
    port = bc.source_address.port or 0
    expl = [f"{what}: bind the upstream socket to {_hp(ip, port)} before connecting"]
    if bc.freebind:
        expl.append("freebind: the address need not be configured on an interface")
    if bc.transparent:
        expl.append("socket_options set IP_TRANSPARENT")
    mark = bc.mark or 0
    if mark:
        expl.append(f"socket_options set SO_MARK {mark}")
    if bc.extra_source_addresses:
        expl.append(
            "extra source addresses (used for the other address family): "
            + ", ".join(a.describe() for a in bc.extra_source_addresses)
        )
    if str(ip) in ("127.0.0.6", "::6"):
        expl.append(
            "127.0.0.6 (::6) is Istio's inbound bind address (InboundPassthroughCluster since 1.3, the "
            "inbound|port|| clusters since 1.10): the application sees the connection come from it, not from the "
            "client; Istio's iptables rules RETURN traffic from 127.0.0.6 on lo so it is not redirected again"
        )
    return UpstreamBinding(ip, port, bc.transparent, mark, via, tuple(expl))


def upstream_binding(
    config: EnvoyConfig,
    listener: Listener | None,
    cluster: Cluster | None,
    downstream_src: IPAddress | str | None,
    chain: FilterChain | None = None,
) -> UpstreamBinding:
    """The source address of the upstream connection, in Envoy's order of precedence.

    1. an `original_src` listener filter on the listener (or the
       `envoy.filters.http.original_src` HTTP filter on the chain): bind
       transparently to the downstream source IP (port 0), SO_MARK = its mark
       (not set when the mark is 0); its socket option runs before bind and
       overrides any upstream_bind_config;
    2. the cluster's `upstream_bind_config.source_address` (Istio: 127.0.0.6
       on inbound clusters);
    3. the bootstrap `cluster_manager.upstream_bind_config`;
    4. none: the kernel chooses.
    """
    src = _ip(downstream_src) if downstream_src is not None else None
    osrc = listener.listener_filter(ORIGINAL_SRC) if listener is not None else None
    http_mark: int | None = None
    if osrc is None and chain is not None:
        for f in chain.filters:
            if f.kind == HTTP_CONNECTION_MANAGER and f.http_original_src_mark is not None:
                http_mark = f.http_original_src_mark
    if (osrc is not None or http_mark is not None) and src is not None:
        mark = (osrc.mark if osrc is not None else http_mark) or 0
        where = (
            f"original_src listener filter on {listener.name}"
            if osrc is not None and listener
            else "original_src HTTP filter"
        )
        expl = [
            f"{where}: the upstream socket gets IP_TRANSPARENT and binds to the downstream source {src} (port 0: "
            "ephemeral), so the application sees the real client address"
        ]
        if mark:
            expl.append(
                f"SO_MARK {mark} on the upstream socket (so policy routing can steer the replies back to Envoy)"
            )
        else:
            expl.append("mark unset (0): Envoy sets no SO_MARK on the upstream socket")
        if (
            cluster is not None
            and cluster.upstream_bind_config is not None
            and cluster.upstream_bind_config.source_address
        ):
            expl.append(
                f"cluster {cluster.name}'s upstream_bind_config ({cluster.upstream_bind_config.source_address.describe()}) "
                "is overridden: original_src sets the local address before the bind"
            )
        return UpstreamBinding(src, 0, True, mark, "original_src", tuple(expl))
    if cluster is not None and cluster.upstream_bind_config is not None:
        b = _from_bind_config(
            cluster.upstream_bind_config, "cluster upstream_bind_config", f"cluster {cluster.name} upstream_bind_config"
        )
        if b is not None:
            return b
    if config.bootstrap_upstream_bind_config is not None:
        b = _from_bind_config(
            config.bootstrap_upstream_bind_config,
            "bootstrap cluster_manager.upstream_bind_config",
            "bootstrap cluster_manager.upstream_bind_config",
        )
        if b is not None:
            return b
    return UpstreamBinding(
        None,
        0,
        False,
        0,
        "none",
        ("no original_src and no upstream_bind_config: Envoy does not bind; the kernel picks the source address",),
    )


@dataclass(frozen=True)
class UpstreamTarget:
    """Where Envoy connects: `ip`/`port` when known; `host` for DNS clusters; all `endpoints`."""

    ip: IPAddress | None
    port: int | None
    host: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    explanation: tuple[str, ...] = ()

    def as_tuple(self) -> tuple[IPAddress, int] | None:
        if self.ip is None or self.port is None:
            return None
        return self.ip, self.port


def upstream_target(cluster: Cluster, original_dst: tuple[IPAddress | str, int] | None = None) -> UpstreamTarget:
    """The address Envoy dials for `cluster`.

    ORIGINAL_DST dials the connection's original destination; STATIC and EDS
    take the first endpoint (all are listed; Envoy load-balances among them);
    STRICT_DNS / LOGICAL_DNS have host names meshviz cannot resolve.
    """
    expl: list[str] = []
    if cluster.type == "ORIGINAL_DST":
        if cluster.original_dst_use_http_header:
            expl.append(
                f"cluster {cluster.name} is ORIGINAL_DST with use_http_header: the destination comes from the "
                "x-envoy-original-dst-host request header"
            )
        if original_dst is None:
            expl.append(
                f"cluster {cluster.name} is ORIGINAL_DST: it dials the connection's original destination (not given)"
            )
            return UpstreamTarget(None, None, explanation=tuple(expl))
        ip = _ip(original_dst[0])
        expl.append(f"cluster {cluster.name} is ORIGINAL_DST: dial the original destination {_hp(ip, original_dst[1])}")
        return UpstreamTarget(ip, original_dst[1], explanation=tuple(expl))
    eps = cluster.endpoints
    if not eps:
        why = {
            "eds-missing": "EDS gave it no endpoints in the dump's EndpointsConfigDump",
            "eds-not-dumped": "it is an EDS cluster and the dump has no EndpointsConfigDump (use ?include_eds)",
        }.get(cluster.endpoints_source, "it has no endpoints")
        expl.append(f"cluster {cluster.name} ({cluster.type}): {why}; Envoy has nowhere to connect")
        return UpstreamTarget(None, None, explanation=tuple(expl))
    first = eps[0]
    listing = ", ".join(e.address.describe() for e in eps[:8]) + (f" … ({len(eps)} in all)" if len(eps) > 8 else "")
    if first.address.kind != "socket":
        expl.append(f"cluster {cluster.name}: endpoint {first.address.describe()} is not an IP socket address")
        return UpstreamTarget(None, None, first.address.address, eps, tuple(expl))
    first_ip = first.address.ip
    if first_ip is None:
        expl.append(
            f"cluster {cluster.name} ({cluster.type}): endpoint host {first.address.address!r} must be resolved by DNS, "
            "which meshviz does not do"
        )
        return UpstreamTarget(None, first.address.port, first.address.address, eps, tuple(expl))
    src = {"eds": "EDS", "load_assignment": "load_assignment", "hosts": "hosts"}.get(
        cluster.endpoints_source, cluster.endpoints_source
    )
    expl.append(
        f"cluster {cluster.name} ({cluster.type}, endpoints from {src}): connect to {first.address.describe()}"
        + (f"; Envoy load-balances ({cluster.lb_policy}) among {listing}" if len(eps) > 1 else "")
    )
    return UpstreamTarget(first_ip, first.address.port, None, eps, tuple(expl))
