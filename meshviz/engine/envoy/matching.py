"""Envoy's own decisions for one connection, read off an `EnvoyConfig`.

* `listener_for` / `select_listener`: which listener's socket accepts a
  connection (exact address before the wildcard; listeners with
  `bind_to_port: false`, in error or warming never accept directly);
* `handoff`: the `use_original_dst` hand-off to the listener whose address is
  the original destination (exact ip:port, then 0.0.0.0:port / [::]:port);
* `select_filter_chain`: Envoy's filter chain match, criterion by criterion
  (destination port, destination IP, server name, transport protocol,
  application protocols, direct source IP, source type, source IP, source
  port), with its no-fallback rule and the `default_filter_chain`;
* `route_for` / `cluster_for`: HTTP virtual host and route selection, and the
  cluster a tcp_proxy or http_connection_manager chain sends to;
* `upstream_binding` / `upstream_target`: the source address Envoy binds the
  upstream socket to (original_src, cluster or bootstrap
  `upstream_bind_config`, or none) and where it connects.

Every selection carries an `explanation`: the steps, in Envoy's order, in
words a user can follow.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from meshviz.engine.core.model import IPAddress, IPNetwork
from meshviz.engine.envoy.model import (
    HTTP_CONNECTION_MANAGER,
    HTTP_INSPECTOR,
    ORIGINAL_SRC,
    TCP_PROXY,
    TLS_INSPECTOR,
    BindConfig,
    Cluster,
    Endpoint,
    EnvoyConfig,
    FilterChain,
    Listener,
    ListenerFilter,
    NetworkFilter,
    Route,
    RouteConfiguration,
    VirtualHost,
    WeightedCluster,
)

__all__ = [
    "ClusterSelection",
    "ConnInfo",
    "FilterChainSelection",
    "InspectedConnection",
    "ListenerSelection",
    "RouteSelection",
    "UpstreamBinding",
    "UpstreamTarget",
    "cluster_for",
    "handoff",
    "inspect_connection",
    "listener_for",
    "route_for",
    "select_filter_chain",
    "select_handoff",
    "select_listener",
    "upstream_binding",
    "upstream_target",
]

_ANY_V4 = ipaddress.ip_network("0.0.0.0/0")
_ANY_V6 = ipaddress.ip_network("::/0")
# What Envoy matches a non-IP (unix socket) address as: only the catch-all ranges match it.
_FAKE_ADDRESS = ipaddress.ip_address("255.255.255.255")


def _ip(value: IPAddress | str) -> IPAddress:
    return value if not isinstance(value, str) else ipaddress.ip_address(value.strip().strip("[]"))


def _hp(ip: IPAddress, port: int | None) -> str:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{host}:{port}" if port is not None else host


# --------------------------------------------------------------------------
# Listeners
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerSelection:
    listener: Listener | None
    explanation: tuple[str, ...] = ()


def _socket_listeners(config: EnvoyConfig) -> list[Listener]:
    return [lst for lst in config.listeners if any(a.kind == "socket" for a in lst.addresses)]


def _find_by_address(candidates: Sequence[Listener], ip: IPAddress, port: int) -> tuple[Listener | None, str]:
    """Exact ip:port first, then the wildcard of the same family (or `::` with ipv4_compat)."""
    for lst in candidates:
        for a in lst.addresses:
            aip = a.ip
            if aip is not None and a.port == port and aip == ip:
                return lst, f"exact address {_hp(ip, port)}"
    for lst in candidates:
        for a in lst.addresses:
            aip = a.ip
            if aip is None or a.port != port or not aip.is_unspecified:
                continue
            if aip.version == ip.version:
                return lst, f"wildcard address {a.describe()}"
            if ip.version == 4 and aip.version == 6 and a.ipv4_compat:
                return lst, f"wildcard address {a.describe()} (ipv4_compat)"
    return None, ""


def _unusable_note(config: EnvoyConfig, ip: IPAddress, port: int, usable: Sequence[Listener]) -> list[str]:
    """Explain listeners on that address that exist but cannot take the connection."""
    notes = []
    seen: set[tuple[str, str]] = set()
    for lst in _socket_listeners(config):
        if lst in usable:
            continue
        for a in lst.addresses:
            aip = a.ip
            if aip is None or a.port != port or not (aip == ip or (aip.is_unspecified and aip.version == ip.version)):
                continue
            key = (lst.name, lst.state)
            if key in seen:
                continue
            seen.add(key)
            if lst.state == "error":
                notes.append(
                    f"listener {lst.describe()} failed to load (error_state) and is not used: {lst.error_detail}"
                )
            elif lst.state == "warming":
                notes.append(f"listener {lst.describe()} is still warming and does not accept connections yet")
            elif lst.state == "draining":
                notes.append(f"listener {lst.describe()} is draining and takes no new connections")
    return notes


def select_listener(
    config: EnvoyConfig,
    dst_ip: IPAddress | str,
    dst_port: int,
    *,
    handed_off_from: Listener | None = None,
) -> ListenerSelection:
    """The listener that accepts a TCP connection arriving on (dst_ip, dst_port).

    Only active listeners with `bind_to_port` (the default) own a listening
    socket.  With `handed_off_from`, this is instead the `use_original_dst`
    hand-off lookup (see `select_handoff`).
    """
    if handed_off_from is not None:
        return select_handoff(config, handed_off_from, (dst_ip, dst_port))
    ip = _ip(dst_ip)
    usable = [lst for lst in _socket_listeners(config) if lst.state == "active" and lst.bind_to_port]
    lst, how = _find_by_address(usable, ip, dst_port)
    notes = _unusable_note(config, ip, dst_port, usable)
    if lst is None:
        passive = [
            x.name
            for x in _socket_listeners(config)
            if x.state == "active"
            and not x.bind_to_port
            and any(a.ip is not None and a.port == dst_port for a in x.addresses)
        ]
        expl = [
            f"no listener owns a socket on {_hp(ip, dst_port)}: the kernel has nothing listening there (connection refused)"
        ]
        if passive:
            expl.append(
                "listeners with bind_to_port: false on that port only receive connections handed off by a "
                f"use_original_dst listener: {', '.join(passive[:5])}"
            )
        return ListenerSelection(None, tuple(notes + expl))
    expl = [f"listener {lst.describe()} accepts {_hp(ip, dst_port)} ({how})"]
    return ListenerSelection(lst, tuple(notes + expl))


def listener_for(
    config: EnvoyConfig,
    dst_ip: IPAddress | str,
    dst_port: int,
    *,
    handed_off_from: Listener | None = None,
) -> Listener | None:
    """`select_listener(...).listener`."""
    return select_listener(config, dst_ip, dst_port, handed_off_from=handed_off_from).listener


def select_handoff(
    config: EnvoyConfig, accepting_listener: Listener, original_dst: tuple[IPAddress | str, int]
) -> ListenerSelection:
    """Envoy's `use_original_dst` hand-off.

    After the listener filters ran (original_dst restored the destination
    that iptables rewrote), a listener with `use_original_dst` looks for an
    active listener whose address is the original destination: exact ip:port
    first, then 0.0.0.0:port ([::]:port for IPv6).  `bind_to_port: false`
    listeners are candidates.  If there is none, the connection stays on the
    accepting listener, which then selects one of its own filter chains.
    """
    ip = _ip(original_dst[0])
    port = original_dst[1]
    if not accepting_listener.use_original_dst:
        return ListenerSelection(
            None,
            (
                f"listener {accepting_listener.name} has no use_original_dst: no hand-off; the connection stays on it "
                f"and its filter chains match on the destination {_hp(ip, port)}",
            ),
        )
    candidates = [lst for lst in _socket_listeners(config) if lst.state == "active"]
    target, how = _find_by_address(candidates, ip, port)
    notes = _unusable_note(config, ip, port, candidates)
    if target is None:
        return ListenerSelection(
            None,
            (
                *notes,
                f"use_original_dst: no listener has the original destination {_hp(ip, port)} as its address; "
                f"the connection stays on {accepting_listener.name}",
            ),
        )
    return ListenerSelection(
        target,
        (
            *notes,
            f"use_original_dst: {accepting_listener.name} hands the connection off to {target.describe()} "
            f"({how} of the original destination {_hp(ip, port)})",
        ),
    )


def handoff(
    config: EnvoyConfig, accepting_listener: Listener, original_dst: tuple[IPAddress | str, int]
) -> Listener | None:
    """`select_handoff(...).listener`: the hand-off target, or None (stays on the accepting listener)."""
    return select_handoff(config, accepting_listener, original_dst).listener


# --------------------------------------------------------------------------
# Filter chains
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnInfo:
    """What Envoy knows about a downstream connection when it picks a filter chain.

    `dst_ip`/`dst_port` are the destination as the listener sees it (the
    original destination once original_dst restored it).  `direct_src_ip` is
    the peer address (differs from `src_ip` only after proxy_protocol);
    `transport_protocol` is what tls_inspector detected ("tls") or
    "raw_buffer"; `application_protocols` the ALPN values (from TLS, or
    "http/1.1"/"h2c" from http_inspector).  `source_is_local` is computed
    (source is loopback or equals the destination) when None.
    """

    dst_ip: IPAddress
    dst_port: int
    src_ip: IPAddress
    src_port: int = 0
    direct_src_ip: IPAddress | None = None
    sni: str | None = None
    transport_protocol: str = "raw_buffer"
    application_protocols: tuple[str, ...] = ()
    source_is_local: bool | None = None

    @classmethod
    def of(
        cls,
        dst_ip: IPAddress | str,
        dst_port: int,
        src_ip: IPAddress | str,
        src_port: int = 0,
        *,
        direct_src_ip: IPAddress | str | None = None,
        sni: str | None = None,
        transport_protocol: str = "raw_buffer",
        application_protocols: Sequence[str] = (),
        source_is_local: bool | None = None,
    ) -> ConnInfo:
        return cls(
            dst_ip=_ip(dst_ip),
            dst_port=dst_port,
            src_ip=_ip(src_ip),
            src_port=src_port,
            direct_src_ip=_ip(direct_src_ip) if direct_src_ip is not None else None,
            sni=sni,
            transport_protocol=transport_protocol,
            application_protocols=tuple(application_protocols),
            source_is_local=source_is_local,
        )

    @property
    def is_local(self) -> bool:
        if self.source_is_local is not None:
            return self.source_is_local
        return self.src_ip.is_loopback or self.src_ip == self.dst_ip


@dataclass(frozen=True)
class InspectedConnection:
    conn: ConnInfo
    explanation: tuple[str, ...] = ()


def _filter_runs(f: ListenerFilter, port: int) -> bool:
    return not any(start <= port < end for start, end in f.disabled_ports)


def inspect_connection(
    listener: Listener,
    conn: ConnInfo,
    *,
    tls_client_hello: tuple[str | None, Sequence[str]] | None = None,
    http: str | None = None,
) -> InspectedConnection:
    """What the listener's inspector filters learn from the first bytes, as a new ConnInfo.

    `tls_client_hello` is (SNI, ALPN list) when the client starts with a TLS
    ClientHello; `http` is "http/1.0", "http/1.1" or "h2c" when it starts
    with a plaintext HTTP request.  tls_inspector sets transport "tls", the
    SNI and ALPN; http_inspector sets the ALPN of plaintext HTTP.  Filters
    disabled for the destination port (`filter_disabled`) do not run.
    Without tls_inspector Envoy sees "raw_buffer" even for TLS.
    """
    expl: list[str] = []
    tls = listener.listener_filter(TLS_INSPECTOR)
    hi = listener.listener_filter(HTTP_INSPECTOR)
    port = conn.dst_port
    transport = "raw_buffer"
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if tls_client_hello is not None:
        if tls is not None and _filter_runs(tls, port):
            transport, sni, alpn = "tls", tls_client_hello[0], tuple(tls_client_hello[1])
            expl.append(
                f"tls_inspector: TLS ClientHello → transport tls, SNI {sni or '(none)'}, ALPN {','.join(alpn) or '(none)'}"
            )
        else:
            why = "disabled for this port" if tls is not None else "not on this listener"
            expl.append(f"tls_inspector {why}: the TLS connection is seen as raw_buffer, without SNI or ALPN")
    elif http is not None:
        if hi is not None and _filter_runs(hi, port):
            alpn = (http,)
            expl.append(f"http_inspector: plaintext {http} request → application protocol {http}")
        else:
            why = "disabled for this port" if hi is not None else "not on this listener"
            expl.append(f"http_inspector {why}: the HTTP request is not detected (no application protocol)")
    else:
        expl.append("no TLS ClientHello and no HTTP request detected: transport raw_buffer, no application protocol")
    return InspectedConnection(
        replace(conn, transport_protocol=transport, sni=sni, application_protocols=alpn), tuple(expl)
    )


@dataclass(frozen=True)
class FilterChainSelection:
    chain: FilterChain | None
    explanation: tuple[str, ...] = ()
    #: True when the chain is the listener's default_filter_chain.
    is_default: bool = False


def _names(chains: Sequence[FilterChain]) -> str:
    labels: list[str] = []
    for c in chains:
        if c.label not in labels:
            labels.append(c.label)
    shown = ", ".join(labels[:4]) + (f" … (+{len(labels) - 4})" if len(labels) > 4 else "")
    return f"{len(chains)} chain{'s' if len(chains) != 1 else ''}: {shown}" if chains else "no chains"


def _ranges_or_any(ranges: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    return ranges if ranges else (_ANY_V4, _ANY_V6)


def _longest_prefix(
    chains: list[FilterChain], get: Callable[[FilterChain], tuple[IPNetwork, ...]], ip: IPAddress
) -> tuple[list[FilterChain], int | None]:
    best: int | None = None
    picked: list[FilterChain] = []
    for c in chains:
        lens = [n.prefixlen for n in _ranges_or_any(get(c)) if n.version == ip.version and ip in n]
        if not lens:
            continue
        length = max(lens)
        if best is None or length > best:
            best, picked = length, [c]
        elif length == best:
            picked.append(c)
    return picked, best


def select_filter_chain(listener: Listener, conn: ConnInfo) -> FilterChainSelection:
    """Envoy's filter chain match for `conn` on `listener`.

    At every step only the most specific matching value is kept (exact port
    before "any port", longest IP prefix, exact server name before wildcards
    ...).  Once a step narrowed the candidates, later steps never fall back
    to chains dropped earlier: if nothing matches further down, the
    connection gets the `default_filter_chain` or, without one, is closed.
    """
    expl: list[str] = []
    if listener.filter_chain_matcher:
        expl.append(
            f"listener {listener.name} selects filter chains with filter_chain_matcher (the unified matcher API), "
            "which meshviz does not evaluate"
        )
        return FilterChainSelection(None, tuple(expl))
    chains = list(listener.filter_chains)
    dst_ip = conn.dst_ip

    def finish(reason: str) -> FilterChainSelection:
        expl.append(reason)
        if listener.default_filter_chain is not None:
            expl.append(f"→ default_filter_chain {listener.default_filter_chain.label}")
            return FilterChainSelection(listener.default_filter_chain, tuple(expl), True)
        expl.append("→ connection closed: no matching filter chain (and no default_filter_chain)")
        return FilterChainSelection(None, tuple(expl))

    if not chains:
        return finish(f"listener {listener.name} has no filter_chains")

    # 1. destination port
    exact = [c for c in chains if c.match.destination_port == conn.dst_port]
    if exact:
        chains = exact
        expl.append(f"destination port {conn.dst_port}: exact match → {_names(chains)}")
    else:
        chains = [c for c in chains if c.match.destination_port is None]
        if not chains:
            return finish(f"destination port {conn.dst_port}: no chain has this port and none matches any port")
        expl.append(
            f"destination port {conn.dst_port}: no chain names it; chains without destination_port → {_names(chains)}"
        )

    # 2. destination IP
    picked, plen = _longest_prefix(chains, lambda c: c.match.prefix_ranges, dst_ip)
    if not picked:
        return finish(f"destination IP {dst_ip}: no chain's prefix_ranges contain it")
    chains = picked
    expl.append(f"destination IP {dst_ip}: most specific prefix /{plen} → {_names(chains)}")

    # 3. server name
    sni = (conn.sni or "").lower()
    picked = []
    how = ""
    if sni:
        picked = [c for c in chains if sni in c.match.server_names]
        how = f"exact server name {sni}"
        pos = sni.find(".", 1)
        while not picked and 0 <= pos < len(sni) - 1:
            wildcard = "*" + sni[pos:]
            picked = [c for c in chains if wildcard in c.match.server_names]
            how = f"wildcard server name {wildcard}"
            pos = sni.find(".", pos + 1)
    if not picked:
        picked = [c for c in chains if not c.match.server_names]
        how = "chains without server_names"
        if not picked:
            return finish(f"server name {sni or '(none)'}: no chain's server_names match")
    chains = picked
    expl.append(f"server name {sni or '(none)'}: {how} → {_names(chains)}")

    # 4. transport protocol
    tp = conn.transport_protocol or "raw_buffer"
    picked = [c for c in chains if c.match.transport_protocol == tp]
    how = f"exact transport_protocol {tp}"
    if not picked:
        picked = [c for c in chains if not c.match.transport_protocol]
        how = "chains without transport_protocol"
        if not picked:
            return finish(f"transport protocol {tp}: no chain matches")
    chains = picked
    expl.append(f"transport protocol {tp}: {how} → {_names(chains)}")

    # 5. application protocols (the connection's ALPN list, in its order)
    picked = []
    for proto in conn.application_protocols:
        picked = [c for c in chains if proto in c.match.application_protocols]
        if picked:
            how = f"application protocol {proto}"
            break
    if not picked:
        picked = [c for c in chains if not c.match.application_protocols]
        how = "chains without application_protocols"
        if not picked:
            alpn = ",".join(conn.application_protocols) or "(none)"
            return finish(f"application protocols {alpn}: no chain matches")
    chains = picked
    expl.append(f"application protocols {','.join(conn.application_protocols) or '(none)'}: {how} → {_names(chains)}")

    # 6. direct source IP
    direct = conn.direct_src_ip or conn.src_ip
    if any(c.match.direct_source_prefix_ranges for c in chains):
        picked, plen = _longest_prefix(chains, lambda c: c.match.direct_source_prefix_ranges, direct)
        if not picked:
            return finish(f"direct source IP {direct}: no chain matches")
        chains = picked
        expl.append(f"direct source IP {direct}: most specific prefix /{plen} → {_names(chains)}")

    # 7. source type
    if any(c.match.source_type != "ANY" for c in chains):
        local = conn.is_local
        wanted = "SAME_IP_OR_LOOPBACK" if local else "EXTERNAL"
        picked = [c for c in chains if c.match.source_type == wanted]
        how = f"source type {wanted}"
        if not picked:
            picked = [c for c in chains if c.match.source_type == "ANY"]
            how = "chains with source_type ANY"
            if not picked:
                return finish(f"source type: connection is {'local' if local else 'external'}; no chain matches")
        chains = picked
        expl.append(f"source type ({'local' if local else 'external'} connection): {how} → {_names(chains)}")

    # 8. source IP
    if any(c.match.source_prefix_ranges for c in chains):
        picked, plen = _longest_prefix(chains, lambda c: c.match.source_prefix_ranges, conn.src_ip)
        if not picked:
            return finish(f"source IP {conn.src_ip}: no chain matches")
        chains = picked
        expl.append(f"source IP {conn.src_ip}: most specific prefix /{plen} → {_names(chains)}")

    # 9. source port
    if any(c.match.source_ports for c in chains):
        picked = [c for c in chains if conn.src_port in c.match.source_ports]
        how = f"source port {conn.src_port}"
        if not picked:
            picked = [c for c in chains if not c.match.source_ports]
            how = "chains without source_ports"
            if not picked:
                return finish(f"source port {conn.src_port}: no chain matches")
        chains = picked
        expl.append(f"source port {conn.src_port}: {how} → {_names(chains)}")

    chain = chains[0]
    if len(chains) > 1:
        expl.append(
            f"{len(chains)} chains have identical matching rules; Envoy rejects such a listener "
            f'("multiple filter chains with the same matching rules"); taking the first, {chain.label}'
        )
    expl.append(f"→ filter chain {chain.label}")
    if chain.transport_socket == "tls" and conn.transport_protocol != "tls":
        expl.append(
            "this chain terminates TLS (mTLS in Istio) but the connection is plaintext: the TLS handshake fails "
            "and Envoy closes the connection"
        )
    return FilterChainSelection(chain, tuple(expl))


# --------------------------------------------------------------------------
# HTTP routes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteSelection:
    virtual_host: VirtualHost | None
    route: Route | None
    explanation: tuple[str, ...] = ()


def _domain_match(domains: tuple[str, ...], host: str) -> tuple[int, int] | None:
    """Envoy's virtual host ranking: (class, length); class 3 exact, 2 suffix wildcard, 1 prefix wildcard, 0 `*`."""
    best: tuple[int, int] | None = None
    for d in domains:
        rank: tuple[int, int] | None = None
        if d == host:
            rank = (3, len(d))
        elif d == "*":
            rank = (0, 0)
        elif d.startswith("*") and host.endswith(d[1:]) and len(host) > len(d) - 1:
            rank = (2, len(d))
        elif d.endswith("*") and host.startswith(d[:-1]) and len(host) > len(d) - 1:
            rank = (1, len(d))
        if rank is not None and (best is None or rank > best):
            best = rank
    return best


def _header_ok(hm_name: str, kind: str, value: str | None, invert: bool, headers: Mapping[str, str]) -> bool | None:
    actual = headers.get(hm_name)
    if kind == "present":
        ok = actual is not None
    elif actual is None:
        ok = False
    elif kind == "exact":
        ok = actual == value
    elif kind == "prefix":
        ok = actual.startswith(value or "")
    elif kind == "suffix":
        ok = actual.endswith(value or "")
    elif kind == "contains":
        ok = (value or "") in actual
    elif kind == "regex":
        try:
            ok = re.fullmatch(value or "", actual) is not None
        except re.error:
            return None
    else:
        return None
    return ok != invert


def _path_ok(route: Route, path: str) -> tuple[bool, str]:
    m = route.match
    bare = path.split("?", 1)[0]
    cmp_path = bare if m.case_sensitive else bare.lower()

    def norm(s: str) -> str:
        return s if m.case_sensitive else s.lower()

    if m.prefix is not None:
        return cmp_path.startswith(norm(m.prefix)), m.describe()
    if m.path is not None:
        return cmp_path == norm(m.path), m.describe()
    if m.path_separated_prefix is not None:
        p = norm(m.path_separated_prefix)
        return cmp_path == p or cmp_path.startswith(p + "/"), m.describe()
    if m.safe_regex is not None:
        try:
            flags = 0 if m.case_sensitive else re.IGNORECASE
            return re.fullmatch(
                m.safe_regex, bare, flags
            ) is not None, m.describe() + " (RE2 approximated by Python re)"
        except re.error:
            return False, m.describe() + " (regex not understood by meshviz: route skipped)"
    if m.connect_matcher:
        return False, "connect_matcher (only CONNECT requests; not a plain request)"
    return False, m.describe() + " (not evaluated: route skipped)"


def route_for(
    route_config: RouteConfiguration,
    host: str,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
) -> RouteSelection:
    """The virtual host (by Host/:authority) and first matching route (by path) of `route_config`.

    Virtual hosts: exact domain, then the longest suffix wildcard (`*.foo`),
    then the longest prefix wildcard (`foo.*`), then `*`.  If no domain
    matches and the host has a port, the port is stripped when the route
    configuration has `ignore_port_in_host_matching`.  Routes are tried in
    order; header matchers are evaluated against `headers` when given
    (routes that need headers do not match without them).
    """
    expl: list[str] = []
    h = host.strip().lower()
    candidates = [h]
    if route_config.ignore_port_in_host_matching and re.search(r":\d+$", h) and not h.endswith("]"):
        candidates = [re.sub(r":\d+$", "", h)]
        expl.append(f"ignore_port_in_host_matching: host {h} matched as {candidates[0]}")
    best_vh: VirtualHost | None = None
    best_rank: tuple[int, int] | None = None
    for cand in candidates:
        for vh in route_config.virtual_hosts:
            rank = _domain_match(vh.domains, cand)
            if rank is not None and (best_rank is None or rank > best_rank):
                best_vh, best_rank = vh, rank
    if best_vh is None or best_rank is None:
        expl.append(
            f"route config {route_config.name}: no virtual host has a domain matching {host!r} → 404 (no route)"
        )
        return RouteSelection(None, None, tuple(expl))
    kind = {3: "exact domain", 2: "suffix wildcard domain", 1: "prefix wildcard domain", 0: "catch-all domain *"}[
        best_rank[0]
    ]
    expl.append(f"route config {route_config.name}: host {host!r} → virtual host {best_vh.name} ({kind})")
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if ":authority" not in hdrs:
        hdrs[":authority"] = host
    if ":path" not in hdrs:
        hdrs[":path"] = path
    for i, route in enumerate(best_vh.routes):
        ok, what = _path_ok(route, path)
        if not ok:
            continue
        header_fail = None
        for hm in route.match.headers:
            res = _header_ok(hm.name, hm.kind, hm.value, hm.invert, hdrs)
            if res is None:
                header_fail = f"header matcher on {hm.name} ({hm.kind}) not evaluated"
                break
            if not res:
                header_fail = f"header {hm.name} does not match ({hm.kind} {hm.value!r})"
                break
        if header_fail:
            expl.append(f"route {route.name or i}: {what} matches but {header_fail}; next route")
            continue
        expl.append(f"path {path!r}: route {route.name or i} ({what}) → {route.action.describe()}")
        return RouteSelection(best_vh, route, tuple(expl))
    expl.append(f"path {path!r}: no route of virtual host {best_vh.name} matches → 404 (no route)")
    return RouteSelection(best_vh, None, tuple(expl))


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
