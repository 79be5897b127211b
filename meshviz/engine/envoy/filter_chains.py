"""Envoy's filter-chain match, as Envoy does it: listener filters inspect the connection, then the most specific
chain wins, criterion by criterion (destination port, prefix, server names, transport, ALPN, source type, source
prefix, source port).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from meshviz.engine.core.model import IPAddress, IPNetwork
from meshviz.engine.envoy.listeners import _ANY_V4, _ANY_V6, _ip
from meshviz.engine.envoy.model import (
    HTTP_INSPECTOR,
    TLS_INSPECTOR,
    FilterChain,
    Listener,
    ListenerFilter,
)

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
