"""The Envoy side of the engine's model: what a sidecar's Envoy is configured with.

The objects mirror Envoy's own configuration messages (Listener, FilterChain,
FilterChainMatch, Cluster, RouteConfiguration ...) and keep Envoy's field names,
but only the fields that decide where a connection goes and how Envoy opens
the upstream connection.  Everything is a frozen dataclass, like the kernel
side of the model in `meshviz.engine.core.model`.

The parser (`meshviz.engine.envoy.parser`) builds these from an admin
`/config_dump` or from `istioctl proxy-config ... -o json`; the functions in
`meshviz.engine.envoy.matching` read them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import IPAddress, IPNetwork, SourceRef

# Canonical extension names.  Older Envoy/Istio releases used other names for
# the same extensions (`envoy.listener.original_dst`, `envoy.tcp_proxy` ...);
# the parser maps them onto these in the `kind` fields.
ORIGINAL_DST = "envoy.filters.listener.original_dst"
ORIGINAL_SRC = "envoy.filters.listener.original_src"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
PROXY_PROTOCOL = "envoy.filters.listener.proxy_protocol"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
HTTP_ORIGINAL_SRC = "envoy.filters.http.original_src"

#: Listener states as the admin ListenersConfigDump reports them.
LISTENER_STATES = ("active", "warming", "draining", "error")

#: FilterChainMatch.source_type values.
SOURCE_TYPES = ("ANY", "SAME_IP_OR_LOOPBACK", "EXTERNAL")


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """An `envoy.config.core.v3.Address`.

    `kind` is "socket" (`socket_address`: `address` is an IP or a host name,
    `port` its port), "pipe" (unix domain socket: `address` is the path) or
    "internal" (`envoy_internal_address`: `address` is the internal listener's
    name).  `ipv4_compat` is the socket address's own flag: a `::` listener
    with it also accepts IPv4 connections.
    """

    kind: str
    address: str
    port: int | None = None
    ipv4_compat: bool = False

    @property
    def ip(self) -> IPAddress | None:
        """The address as an IP, or None for host names, pipes and internal addresses."""
        if self.kind != "socket":
            return None
        try:
            return ipaddress.ip_address(self.address)
        except ValueError:
            return None

    @property
    def is_wildcard(self) -> bool:
        ip = self.ip
        return ip is not None and ip.is_unspecified

    def describe(self) -> str:
        if self.kind == "pipe":
            return f"unix:{self.address}"
        if self.kind == "internal":
            return f"internal:{self.address}"
        ip = self.ip
        host = f"[{self.address}]" if ip is not None and ip.version == 6 else self.address
        return f"{host}:{self.port}" if self.port is not None else host


# --------------------------------------------------------------------------
# Listeners
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerFilter:
    """One entry of `Listener.listener_filters`.

    `kind` is the canonical extension name (see the constants above), derived
    from the typed config's type URL or, for old dumps, from the name.
    `mark` is `original_src`'s `mark` (None when the filter has none set;
    Envoy then does not set SO_MARK).  `disabled_ports` are the destination
    port ranges (start, end exclusive) of a `filter_disabled` matcher, when it
    is made of `destination_port_range`s only; `filter_disabled` keeps any
    other matcher as text.
    """

    name: str
    type_url: str | None = None
    kind: str = ""
    mark: int | None = None
    disabled_ports: tuple[tuple[int, int], ...] = ()
    filter_disabled: str | None = None


@dataclass(frozen=True)
class FilterChainMatch:
    """`envoy.config.listener.v3.FilterChainMatch`; empty fields match anything."""

    destination_port: int | None = None
    prefix_ranges: tuple[IPNetwork, ...] = ()
    direct_source_prefix_ranges: tuple[IPNetwork, ...] = ()
    source_type: str = "ANY"
    source_prefix_ranges: tuple[IPNetwork, ...] = ()
    source_ports: tuple[int, ...] = ()
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    application_protocols: tuple[str, ...] = ()

    def describe(self) -> str:
        parts: list[str] = []
        if self.destination_port is not None:
            parts.append(f"destination_port={self.destination_port}")
        if self.prefix_ranges:
            parts.append("prefix_ranges=" + ",".join(str(n) for n in self.prefix_ranges))
        if self.server_names:
            parts.append("server_names=" + ",".join(self.server_names))
        if self.transport_protocol:
            parts.append(f"transport_protocol={self.transport_protocol}")
        if self.application_protocols:
            parts.append("application_protocols=" + ",".join(self.application_protocols))
        if self.direct_source_prefix_ranges:
            parts.append("direct_source_prefix_ranges=" + ",".join(str(n) for n in self.direct_source_prefix_ranges))
        if self.source_type != "ANY":
            parts.append(f"source_type={self.source_type}")
        if self.source_prefix_ranges:
            parts.append("source_prefix_ranges=" + ",".join(str(n) for n in self.source_prefix_ranges))
        if self.source_ports:
            parts.append("source_ports=" + ",".join(str(p) for p in self.source_ports))
        return " ".join(parts) if parts else "(matches anything)"


@dataclass(frozen=True)
class WeightedCluster:
    name: str
    weight: int = 0


@dataclass(frozen=True)
class NetworkFilter:
    """One network filter of a filter chain.

    For `tcp_proxy`: `cluster` or `weighted_clusters`.  For
    `http_connection_manager`: `route_config_name` (RDS) or an inline
    `route_config`, and the names of its `http_filters`
    (`http_original_src_mark` is the mark of an `envoy.filters.http.original_src`
    HTTP filter, when there is one).  Other filters are kept by name.
    """

    name: str
    type_url: str | None = None
    kind: str = ""
    cluster: str | None = None
    weighted_clusters: tuple[WeightedCluster, ...] = ()
    route_config_name: str | None = None
    route_config: RouteConfiguration | None = None
    scoped_routes: bool = False
    http_filters: tuple[str, ...] = ()
    http_original_src_mark: int | None = None
    #: http_connection_manager's client-address settings (None when unset): they decide X-Forwarded-For.
    use_remote_address: bool | None = None
    skip_xff_append: bool | None = None
    xff_num_trusted_hops: int | None = None


@dataclass(frozen=True)
class FilterChain:
    """A filter chain.  `index` is its position in `filter_chains` (-1 for the default chain)."""

    name: str | None
    index: int
    match: FilterChainMatch = field(default_factory=FilterChainMatch)
    filters: tuple[NetworkFilter, ...] = ()
    #: "tls" when the chain terminates TLS (transport_socket / v2 tls_context), else the transport socket's name or None.
    transport_socket: str | None = None
    source: SourceRef | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return "default_filter_chain" if self.index < 0 else f"filter_chains[{self.index}]"

    def filter_of_kind(self, kind: str) -> NetworkFilter | None:
        for f in self.filters:
            if f.kind == kind:
                return f
        return None


@dataclass(frozen=True)
class Listener:
    """An Envoy listener and the state the admin dump reports it in.

    `state` is "active", "warming", "draining" or "error"; a listener in
    "error" failed to load (`error_detail` says why) and never accepts
    connections.  `origin` is "static" (bootstrap) or "dynamic" (LDS).
    `bind_to_port` defaults to True; Istio's per-service listeners set it to
    false, so they only receive connections handed off by a `use_original_dst`
    listener.  `transparent`/`freebind` are None when unset.
    """

    name: str
    address: Address | None
    state: str = "active"
    error_detail: str | None = None
    origin: str = "dynamic"
    use_original_dst: bool = False
    bind_to_port: bool = True
    transparent: bool | None = None
    freebind: bool | None = None
    listener_filters: tuple[ListenerFilter, ...] = ()
    filter_chains: tuple[FilterChain, ...] = ()
    default_filter_chain: FilterChain | None = None
    traffic_direction: str | None = None
    #: Set when the listener selects chains with the unified matcher API (`filter_chain_matcher`), which meshviz does not evaluate.
    filter_chain_matcher: bool = False
    additional_addresses: tuple[Address, ...] = ()
    version_info: str | None = None
    source: SourceRef | None = None

    def listener_filter(self, kind: str) -> ListenerFilter | None:
        for f in self.listener_filters:
            if f.kind == kind:
                return f
        return None

    @property
    def addresses(self) -> tuple[Address, ...]:
        return ((self.address,) if self.address is not None else ()) + self.additional_addresses

    def describe(self) -> str:
        where = self.address.describe() if self.address is not None else "(no address)"
        return f"{self.name} ({where})"


# --------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderMatcher:
    """A route's header matcher.  `kind` is exact/prefix/suffix/contains/regex/present/range/other."""

    name: str
    kind: str
    value: str | None = None
    invert: bool = False


@dataclass(frozen=True)
class RouteMatch:
    """`RouteMatch`: one of prefix / path / safe_regex (the regex is kept as text), plus header matchers."""

    prefix: str | None = None
    path: str | None = None
    safe_regex: str | None = None
    path_separated_prefix: str | None = None
    connect_matcher: bool = False
    case_sensitive: bool = True
    headers: tuple[HeaderMatcher, ...] = ()
    #: A path matcher meshviz does not evaluate (e.g. path_match_policy), as text.
    other: str | None = None

    def describe(self) -> str:
        if self.prefix is not None:
            return f"prefix {self.prefix!r}"
        if self.path is not None:
            return f"path {self.path!r}"
        if self.safe_regex is not None:
            return f"safe_regex {self.safe_regex!r}"
        if self.path_separated_prefix is not None:
            return f"path_separated_prefix {self.path_separated_prefix!r}"
        if self.connect_matcher:
            return "connect_matcher"
        return self.other or "(no path matcher)"


@dataclass(frozen=True)
class RouteAction:
    """What a route does.  `kind`: cluster | weighted_clusters | cluster_header | redirect | direct_response | other."""

    kind: str
    cluster: str | None = None
    weighted_clusters: tuple[WeightedCluster, ...] = ()
    cluster_header: str | None = None
    redirect: str | None = None
    direct_response_status: int | None = None

    def describe(self) -> str:
        if self.kind == "cluster":
            return f"cluster {self.cluster}"
        if self.kind == "weighted_clusters":
            return "weighted clusters " + ", ".join(f"{w.name} ({w.weight})" for w in self.weighted_clusters)
        if self.kind == "cluster_header":
            return f"cluster named by header {self.cluster_header}"
        if self.kind == "redirect":
            return f"redirect {self.redirect}"
        if self.kind == "direct_response":
            return f"direct response {self.direct_response_status}"
        return self.kind


@dataclass(frozen=True)
class Route:
    match: RouteMatch
    action: RouteAction
    name: str | None = None


@dataclass(frozen=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class RouteConfiguration:
    name: str
    virtual_hosts: tuple[VirtualHost, ...] = ()
    ignore_port_in_host_matching: bool = False
    #: "static", "dynamic" (RDS) or "inline" (inside an http_connection_manager).
    origin: str = "dynamic"
    source: SourceRef | None = None


# --------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SocketOption:
    """A `SocketOption` (level, name, int value); `description` is Envoy's free text."""

    level: int
    name: int
    int_value: int | None = None
    state: str = "STATE_PREBIND"
    description: str | None = None


# Linux constants for recognising socket options.
SOL_IP = 0
SOL_SOCKET = 1
IP_TRANSPARENT = 19
IP_FREEBIND = 15
SO_MARK = 36


@dataclass(frozen=True)
class BindConfig:
    """`envoy.config.core.v3.BindConfig` (cluster or bootstrap `upstream_bind_config`).

    `transparent` is True when the bind config's socket options set
    IP_TRANSPARENT (BindConfig has no field of that name); `mark` is an
    SO_MARK socket option's value.
    """

    source_address: Address | None = None
    freebind: bool | None = None
    socket_options: tuple[SocketOption, ...] = ()
    extra_source_addresses: tuple[Address, ...] = ()

    @property
    def transparent(self) -> bool:
        return any(o.level == SOL_IP and o.name == IP_TRANSPARENT and o.int_value for o in self.socket_options)

    @property
    def mark(self) -> int | None:
        for o in self.socket_options:
            if o.level == SOL_SOCKET and o.name == SO_MARK:
                return o.int_value
        return None


@dataclass(frozen=True)
class Endpoint:
    address: Address
    health_status: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class ClusterLoadAssignment:
    """An EndpointsConfigDump entry: the endpoints EDS gave a cluster."""

    cluster_name: str
    endpoints: tuple[Endpoint, ...] = ()
    origin: str = "dynamic"


@dataclass(frozen=True)
class Cluster:
    """An Envoy cluster.

    `type` is the discovery type (STATIC, STRICT_DNS, LOGICAL_DNS, EDS,
    ORIGINAL_DST) or, for a custom `cluster_type`, its name.  `endpoints`
    come from `load_assignment` (or the v2 `hosts` list), or for EDS clusters
    from the dump's EndpointsConfigDump (`endpoints_source` says which;
    "missing" when an EDS cluster has no entry there).  `state` is "static",
    "active" (dynamic_active) or "warming".
    """

    name: str
    type: str
    lb_policy: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    endpoints_source: str = "none"
    eds_service_name: str | None = None
    upstream_bind_config: BindConfig | None = None
    #: Names of the set fields of `upstream_connection_options` (e.g. "tcp_keepalive").
    upstream_connection_options: tuple[str, ...] = ()
    #: ORIGINAL_DST: `original_dst_lb_config.use_http_header` (the destination comes from an HTTP header).
    original_dst_use_http_header: bool = False
    transport_socket: str | None = None
    state: str = "active"
    version_info: str | None = None
    source: SourceRef | None = None


# --------------------------------------------------------------------------
# The whole configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapAdmin:
    address: Address | None = None


@dataclass(frozen=True)
class EnvoyConfig:
    """Everything parsed from one dump.

    `node_metadata` keeps the node's metadata as (key, value) pairs; values
    that are not strings are kept as compact JSON text.  `sections` lists the
    config dump sections found (e.g. "ListenersConfigDump"), or "listeners" /
    "clusters" / "routes" for `istioctl proxy-config ... -o json` lists.
    """

    node_id: str | None = None
    node_cluster: str | None = None
    node_metadata: tuple[tuple[str, str], ...] = ()
    listeners: tuple[Listener, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    route_configs: tuple[RouteConfiguration, ...] = ()
    endpoint_configs: tuple[ClusterLoadAssignment, ...] = ()
    secrets: tuple[str, ...] = ()
    bootstrap_admin: BootstrapAdmin | None = None
    bootstrap_upstream_bind_config: BindConfig | None = None
    sections: tuple[str, ...] = ()
    redactions: int = 0
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()

    def metadata(self, key: str) -> str | None:
        for k, v in self.node_metadata:
            if k == key:
                return v
        return None

    @property
    def interception_mode(self) -> str | None:
        return self.metadata("INTERCEPTION_MODE")

    @property
    def istio_version(self) -> str | None:
        return self.metadata("ISTIO_VERSION")

    def listener(self, name: str, *, state: str | None = "active") -> Listener | None:
        """The listener of that name (in that state; any state when `state` is None)."""
        for lst in self.listeners:
            if lst.name == name and (state is None or lst.state == state):
                return lst
        return None

    def cluster(self, name: str) -> Cluster | None:
        found: Cluster | None = None
        for c in self.clusters:
            if c.name == name:
                if c.state != "warming":
                    return c
                found = found or c
        return found

    def route_config(self, name: str) -> RouteConfiguration | None:
        for rc in self.route_configs:
            if rc.name == name:
                return rc
        return None

    def load_assignment(self, cluster_name: str) -> ClusterLoadAssignment | None:
        for la in self.endpoint_configs:
            if la.cluster_name == cluster_name:
                return la
        return None


@dataclass(frozen=True)
class EnvoyParseResult:
    config: EnvoyConfig
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()
