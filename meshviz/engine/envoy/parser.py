"""Parse an Envoy admin `/config_dump` (or `istioctl proxy-config ... -o json`) into `EnvoyConfig`.

Accepted shapes:

* the admin `/config_dump` JSON: `{"configs": [...]}` with BootstrapConfigDump,
  ClustersConfigDump, ListenersConfigDump, RoutesConfigDump,
  EndpointsConfigDump, SecretsConfigDump, ScopedRoutesConfigDump ... entries;
* a bare JSON array of Listener, Cluster or RouteConfiguration objects, as
  `istioctl proxy-config listeners|clusters|routes -o json` prints, or an
  object holding such arrays under "listeners" / "clusters" / "routes";
* a single `...ConfigDump` object.

Field names may be snake_case or proto3-JSON camelCase; old Istio 1.2–1.4
dumps with `envoy.api.v2` types, `config` structs instead of `typed_config`,
`deprecated_v1.bind_to_port` and v2 cluster `hosts` are understood too.

The text is redacted first (`meshviz.engine.envoy.redact`), so nothing this
module keeps (source lines in errors and SourceRefs) holds a secret.  Like the
other parsers, it never raises on bad input: malformed JSON gives one
ParseError with json's line and column; structural problems give ParseErrors
whose message starts with the JSON path; fields that are present but not
modelled give (aggregated) ParseWarnings.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import IPNetwork, SourceRef
from meshviz.engine.envoy.model import (
    HTTP_CONNECTION_MANAGER,
    HTTP_INSPECTOR,
    HTTP_ORIGINAL_SRC,
    ORIGINAL_DST,
    ORIGINAL_SRC,
    PROXY_PROTOCOL,
    TCP_PROXY,
    TLS_INSPECTOR,
    Address,
    BindConfig,
    BootstrapAdmin,
    Cluster,
    ClusterLoadAssignment,
    Endpoint,
    EnvoyConfig,
    EnvoyParseResult,
    FilterChain,
    FilterChainMatch,
    HeaderMatcher,
    Listener,
    ListenerFilter,
    NetworkFilter,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    SocketOption,
    VirtualHost,
    WeightedCluster,
)
from meshviz.engine.envoy.redact import redact

__all__ = ["parse_config_dump"]

# --------------------------------------------------------------------------
# Field access: snake_case or camelCase
# --------------------------------------------------------------------------

_CAMEL_CACHE: dict[str, str] = {}
_SNAKE_RE = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SNAKE_CACHE: dict[str, str] = {}


def _camel(name: str) -> str:
    c = _CAMEL_CACHE.get(name)
    if c is None:
        head, *rest = name.split("_")
        c = head + "".join(p[:1].upper() + p[1:] for p in rest)
        _CAMEL_CACHE[name] = c
    return c


def _snake(key: str) -> str:
    s = _SNAKE_CACHE.get(key)
    if s is None:
        s = _SNAKE_RE.sub(r"_\1", key).lower()
        if len(_SNAKE_CACHE) < 50_000:
            _SNAKE_CACHE[key] = s
    return s


def _get(d: Mapping[str, Any], name: str) -> Any:
    v = d.get(name)
    if v is None and "_" in name:
        v = d.get(_camel(name))
    return v


def _wrapped(v: Any) -> Any:
    """A protobuf wrapper (BoolValue, UInt32Value) may appear as {"value": x}."""
    if isinstance(v, dict) and "value" in v and len(v) == 1:
        return v["value"]
    return v


# Type URL message names -> canonical extension kind.
_KIND_BY_MESSAGE = {
    "OriginalDst": ORIGINAL_DST,
    "TlsInspector": TLS_INSPECTOR,
    "HttpInspector": HTTP_INSPECTOR,
    "ProxyProtocol": PROXY_PROTOCOL,
    "TcpProxy": TCP_PROXY,
    "HttpConnectionManager": HTTP_CONNECTION_MANAGER,
}
_KIND_BY_NAME = {
    "envoy.listener.original_dst": ORIGINAL_DST,
    "envoy.filters.listener.original_dst": ORIGINAL_DST,
    "envoy.listener.original_src": ORIGINAL_SRC,
    "envoy.filters.listener.original_src": ORIGINAL_SRC,
    "envoy.listener.tls_inspector": TLS_INSPECTOR,
    "envoy.filters.listener.tls_inspector": TLS_INSPECTOR,
    "envoy.listener.http_inspector": HTTP_INSPECTOR,
    "envoy.filters.listener.http_inspector": HTTP_INSPECTOR,
    "envoy.listener.proxy_protocol": PROXY_PROTOCOL,
    "envoy.filters.listener.proxy_protocol": PROXY_PROTOCOL,
    "envoy.tcp_proxy": TCP_PROXY,
    "envoy.filters.network.tcp_proxy": TCP_PROXY,
    "envoy.http_connection_manager": HTTP_CONNECTION_MANAGER,
    "envoy.filters.network.http_connection_manager": HTTP_CONNECTION_MANAGER,
    "envoy.filters.http.original_src": HTTP_ORIGINAL_SRC,
}
_TYPED_STRUCTS = ("udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct")


def _kind(name: str, type_url: str | None) -> str:
    if type_url:
        message = type_url.rsplit(".", 1)[-1]
        if message == "OriginalSrc":
            return HTTP_ORIGINAL_SRC if ".http." in type_url else ORIGINAL_SRC
        if message in _KIND_BY_MESSAGE:
            return _KIND_BY_MESSAGE[message]
    return _KIND_BY_NAME.get(name, name)


def _typed(f: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A filter's (type URL, config): unwraps TypedStruct; v2 `config` structs have no type URL."""
    tc = _get(f, "typed_config")
    if isinstance(tc, dict):
        url = tc.get("@type")
        if isinstance(url, str) and url.endswith(_TYPED_STRUCTS):
            inner_url = _get(tc, "type_url")
            value = tc.get("value")
            return (inner_url if isinstance(inner_url, str) else None), (value if isinstance(value, dict) else {})
        return (url if isinstance(url, str) else None), tc
    cfg = f.get("config")
    if isinstance(cfg, dict):
        return None, cfg
    return None, {}


# Fields each kind of object understands (snake_case); others are reported as not modelled.
_KNOWN: dict[str, frozenset[str]] = {
    "listener": frozenset(
        {
            "@type",
            "name",
            "address",
            "additional_addresses",
            "use_original_dst",
            "bind_to_port",
            "deprecated_v1",
            "transparent",
            "freebind",
            "listener_filters",
            "filter_chains",
            "default_filter_chain",
            "traffic_direction",
            "filter_chain_matcher",
            "internal_listener",
            "socket_options",
        }
    ),
    "listener filter": frozenset({"name", "typed_config", "config", "filter_disabled"}),
    "filter chain": frozenset({"name", "filter_chain_match", "filters", "transport_socket", "tls_context"}),
    "filter_chain_match": frozenset(
        {
            "destination_port",
            "prefix_ranges",
            "direct_source_prefix_ranges",
            "source_type",
            "source_prefix_ranges",
            "source_ports",
            "server_names",
            "transport_protocol",
            "application_protocols",
        }
    ),
    "tcp_proxy": frozenset({"@type", "cluster", "weighted_clusters"}),
    "http_connection_manager": frozenset(
        {
            "@type",
            "rds",
            "route_config",
            "scoped_routes",
            "http_filters",
            "use_remote_address",
            "skip_xff_append",
            "xff_num_trusted_hops",
        }
    ),
    "cluster": frozenset(
        {
            "@type",
            "name",
            "type",
            "cluster_type",
            "lb_policy",
            "load_assignment",
            "hosts",
            "eds_cluster_config",
            "upstream_bind_config",
            "upstream_connection_options",
            "original_dst_lb_config",
            "transport_socket",
            "transport_socket_matches",
            "tls_context",
        }
    ),
    "route configuration": frozenset({"@type", "name", "virtual_hosts", "ignore_port_in_host_matching"}),
    "virtual host": frozenset({"name", "domains", "routes"}),
    "route": frozenset({"name", "match", "route", "redirect", "direct_response"}),
    "route match": frozenset(
        {
            "prefix",
            "path",
            "safe_regex",
            "regex",
            "path_separated_prefix",
            "connect_matcher",
            "case_sensitive",
            "headers",
        }
    ),
    "route action": frozenset({"cluster", "weighted_clusters", "cluster_header"}),
    "bootstrap": frozenset({"node", "admin", "cluster_manager", "static_resources"}),
    "node": frozenset({"id", "cluster", "metadata"}),
    "cluster_load_assignment": frozenset({"@type", "cluster_name", "endpoints"}),
    "lb endpoint": frozenset({"endpoint", "health_status"}),
    "locality lb endpoints": frozenset({"lb_endpoints"}),
}

_CLUSTER_TYPES = {0: "STATIC", 1: "STRICT_DNS", 2: "LOGICAL_DNS", 3: "EDS", 4: "ORIGINAL_DST"}


# --------------------------------------------------------------------------
# Locating things in the text (best effort, for line numbers)
# --------------------------------------------------------------------------


class _Locator:
    EXCERPT = 200

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, max(pos, 0))

    def line_text(self, line: int, column: int | None = None) -> str:
        if line < 1 or line > len(self.starts):
            return ""
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        s = self.text[start:end].rstrip("\r")
        if len(s) <= self.EXCERPT:
            return s.strip()
        col = (column or 1) - 1
        lo = max(0, col - self.EXCERPT // 2)
        return ("…" if lo else "") + s[lo : lo + self.EXCERPT].strip() + "…"

    def ref(self, pos: int) -> tuple[int, int, str]:
        line = self.line_of(pos)
        column = pos - self.starts[line - 1] + 1 if pos >= 0 else 1
        return line, column, self.line_text(line, column)

    def find_name(self, name: str, start: int) -> int:
        """Where `"name"\\s*:\\s*"<name>"` first starts at or after `start` (-1 if nowhere): the value found with
        str.find, then what comes before it checked (a regular expression per name cost more to compile than to
        run: a big dump has thousands of names)."""
        text = self.text
        token = json.dumps(name)
        pos = text.find(token, start)
        while pos >= 0:
            q = pos
            while q > 0 and text[q - 1].isspace():
                q -= 1
            if q > 0 and text[q - 1] == ":":
                q -= 1
                while q > 0 and text[q - 1].isspace():
                    q -= 1
                if q - 6 >= start and text.startswith('"name"', q - 6):
                    return q - 6
            pos = text.find(token, pos + 1)
        return -1

    def find_key(self, key: str, start: int) -> int:
        for k in (key, _camel(key)):
            pos = self.text.find(f'"{k}"', max(start, 0))
            if pos >= 0:
                return pos
        return -1


# --------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------


class _Bad(Exception):
    """A structural problem at `path` (raised and caught inside the parser only)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.loc = _Locator(text)
        self.errors: list[ParseError] = []
        self.warnings: list[ParseWarning] = []
        self.unmodelled: dict[str, Counter[str]] = {}
        self.unmodelled_line: dict[str, int] = {}
        self.filters_by_name: Counter[str] = Counter()
        self.cursor = 0
        self.anchor = 0
        self.in_rejected = False
        # results
        self.node_id: str | None = None
        self.node_cluster: str | None = None
        self.node_metadata: list[tuple[str, str]] = []
        self.listeners: list[Listener] = []
        self.clusters: list[Cluster] = []
        self.route_configs: list[RouteConfiguration] = []
        self.endpoint_configs: list[ClusterLoadAssignment] = []
        self.secrets: list[str] = []
        self.admin: BootstrapAdmin | None = None
        self.bootstrap_bind: BindConfig | None = None
        self.sections: list[str] = []
        self.bootstrap_static: dict[str, Any] | None = None

    # ---- reporting ------------------------------------------------------

    def error(self, path: str, message: str, *, key: str | None = None) -> None:
        pos = -1
        if key:
            pos = self.loc.find_key(key.split("[")[0], self.anchor)
        if pos < 0:
            line, column, text = 1, 1, self.loc.line_text(1)
        else:
            line, column, text = self.loc.ref(pos)
        if self.in_rejected:
            # Inside a listener Envoy already rejected (error_state): a finding, not a problem of the dump.
            self.warnings.append(
                ParseWarning(self.source, line, text, f"{path}: {message} (in a listener Envoy rejected)")
            )
            return
        self.errors.append(ParseError(self.source, line, column, text, f"{path}: {message}"))

    def warn(self, message: str, *, pos: int = -1) -> None:
        if pos >= 0:
            line, _col, text = self.loc.ref(pos)
        else:
            line, text = 0, ""
        self.warnings.append(ParseWarning(self.source, line, text, message))

    def note_fields(self, kind: str, obj: Mapping[str, Any]) -> None:
        known = _KNOWN[kind]
        for key in obj:
            k = _snake(key)
            if k not in known:
                c = self.unmodelled.get(kind)
                if c is None:
                    c = self.unmodelled[kind] = Counter()
                    self.unmodelled_line[kind] = self.anchor
                c[k] += 1

    def ref_at(self, pos: int) -> SourceRef:
        line, _col, text = self.loc.ref(pos)
        return SourceRef(self.source, line, text)

    def locate(self, name: str | None) -> int:
        """Position of `"name": "<name>"` at or after the cursor (advances it); the cursor if not found."""
        if name:
            pos = self.loc.find_name(name, self.cursor)
            if pos >= 0:
                self.cursor = pos + 1
                return pos
        return self.cursor

    def seek_section(self, type_url: str) -> None:
        pos = self.loc.text.find(json.dumps(type_url))
        if pos >= 0:
            self.cursor = pos

    # ---- scalars --------------------------------------------------------

    @staticmethod
    def _bool(v: Any, path: str) -> bool | None:
        v = _wrapped(v)
        if v is None:
            return None
        if isinstance(v, bool):
            return v
        raise _Bad(path, f"expected true or false, got {json.dumps(v)}")

    @staticmethod
    def _int(v: Any, path: str, *, maximum: int = 0xFFFFFFFF) -> int | None:
        v = _wrapped(v)
        if v is None:
            return None
        if isinstance(v, bool):
            raise _Bad(path, f"expected a number, got {json.dumps(v)}")
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if not isinstance(v, int) or v < 0 or v > maximum:
            raise _Bad(path, f"expected an integer 0..{maximum}, got {json.dumps(v)}")
        return v

    @staticmethod
    def _str(v: Any, path: str) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        raise _Bad(path, f"expected a string, got {json.dumps(v)[:80]}")

    @staticmethod
    def _list(v: Any, path: str) -> list[Any]:
        if v is None:
            return []
        if isinstance(v, list):
            return v
        raise _Bad(path, f"expected a list, got {type(v).__name__}")

    @staticmethod
    def _dict(v: Any, path: str) -> dict[str, Any]:
        if v is None:
            return {}
        if isinstance(v, dict):
            return v
        raise _Bad(path, f"expected an object, got {type(v).__name__}")

    # ---- addresses --------------------------------------------------------

    def address(self, v: Any, path: str) -> Address | None:
        d = self._dict(v, path)
        if not d:
            return None
        sa = _get(d, "socket_address")
        if sa is not None:
            sa = self._dict(sa, f"{path}.socket_address")
            host = self._str(_get(sa, "address"), f"{path}.socket_address.address") or ""
            port = self._int(_get(sa, "port_value"), f"{path}.socket_address.port_value", maximum=65535)
            if port is None and _get(sa, "named_port") is not None:
                raise _Bad(f"{path}.socket_address.named_port", "named ports are not supported")
            compat = self._bool(_get(sa, "ipv4_compat"), f"{path}.socket_address.ipv4_compat") or False
            return Address("socket", host, port if port is not None else 0, compat)
        pipe = _get(d, "pipe")
        if pipe is not None:
            pipe = self._dict(pipe, f"{path}.pipe")
            return Address("pipe", self._str(_get(pipe, "path"), f"{path}.pipe.path") or "")
        internal = _get(d, "envoy_internal_address")
        if internal is not None:
            internal = self._dict(internal, f"{path}.envoy_internal_address")
            name = self._str(
                _get(internal, "server_listener_name"), f"{path}.envoy_internal_address.server_listener_name"
            )
            return Address("internal", name or "")
        raise _Bad(path, f"unknown address kind {sorted(d)}")

    def cidr(self, v: Any, path: str) -> IPNetwork:
        d = self._dict(v, path)
        prefix = self._str(_get(d, "address_prefix"), f"{path}.address_prefix")
        if not prefix:
            raise _Bad(f"{path}.address_prefix", "missing address_prefix")
        plen = self._int(_get(d, "prefix_len"), f"{path}.prefix_len", maximum=128)
        try:
            ip = ipaddress.ip_address(prefix)
        except ValueError:
            raise _Bad(f"{path}.address_prefix", f"not an IP address: {prefix!r}") from None
        if plen is None:
            # Envoy's CidrRange: an unset prefix_len is 0, i.e. the whole address family.
            plen = 0
            self.warn(f"{path}: prefix_len unset; Envoy treats it as 0 ({prefix}/0 matches every address)")
        if plen > ip.max_prefixlen:
            raise _Bad(f"{path}.prefix_len", f"{plen} is too long for {prefix}")
        return ipaddress.ip_network(f"{prefix}/{plen}", strict=False)

    def socket_options(self, v: Any, path: str) -> tuple[SocketOption, ...]:
        out = []
        for i, o in enumerate(self._list(v, path)):
            p = f"{path}[{i}]"
            o = self._dict(o, p)
            level = self._int(_get(o, "level"), f"{p}.level", maximum=2**63) or 0
            name = self._int(_get(o, "name"), f"{p}.name", maximum=2**63) or 0
            iv = _get(o, "int_value")
            int_value = int(iv) if isinstance(iv, int | str) and str(iv).lstrip("-").isdigit() else None
            state = self._str(_get(o, "state"), f"{p}.state") or "STATE_PREBIND"
            desc = self._str(_get(o, "description"), f"{p}.description")
            out.append(SocketOption(level, name, int_value, state, desc))
        return tuple(out)

    def bind_config(self, v: Any, path: str) -> BindConfig | None:
        d = self._dict(v, path)
        if not d:
            return None
        sa = _get(d, "source_address")
        source = self.address({"socket_address": sa}, f"{path}.source_address") if sa is not None else None
        extras: list[Address] = []
        for key in ("extra_source_addresses", "additional_source_addresses"):
            for i, e in enumerate(self._list(_get(d, key), f"{path}.{key}")):
                e = self._dict(e, f"{path}.{key}[{i}]")
                inner = _get(e, "address") if "address" in e else e
                a = self.address({"socket_address": inner}, f"{path}.{key}[{i}]")
                if a is not None:
                    extras.append(a)
        return BindConfig(
            source_address=source,
            freebind=self._bool(_get(d, "freebind"), f"{path}.freebind"),
            socket_options=self.socket_options(_get(d, "socket_options"), f"{path}.socket_options"),
            extra_source_addresses=tuple(extras),
        )

    # ---- listeners ------------------------------------------------------

    def listener(
        self,
        obj: Any,
        path: str,
        *,
        state: str,
        origin: str,
        error_detail: str | None = None,
        version_info: str | None = None,
        entry_name: str | None = None,
    ) -> None:
        try:
            d = self._dict(obj, path)
        except _Bad as bad:
            self.error(bad.path, bad.message)
            return
        name = _get(d, "name") if isinstance(_get(d, "name"), str) else entry_name
        self.in_rejected = state == "error"
        try:
            self._listener(d, path, name, state, origin, error_detail, version_info)
        finally:
            self.in_rejected = False

    def _listener(
        self,
        d: dict[str, Any],
        path: str,
        name: str | None,
        state: str,
        origin: str,
        error_detail: str | None,
        version_info: str | None,
    ) -> None:
        pos = self.locate(name)
        self.anchor = pos
        self.note_fields("listener", d)
        problems: list[str] = []
        address: Address | None = None
        try:
            address = self.address(_get(d, "address"), f"{path}.address")
            if address is not None and address.kind == "socket" and address.ip is None:
                raise _Bad(
                    f"{path}.address.socket_address.address", f"listener address is not an IP: {address.address!r}"
                )
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1])
            problems.append(bad.message)
            address = None
        if address is None and _get(d, "internal_listener") is not None:
            address = Address("internal", name or "")
        if not name:
            name = f"{address.describe()}" if address is not None else path
        fields: dict[str, Any] = {}
        try:
            fields["use_original_dst"] = self._bool(_get(d, "use_original_dst"), f"{path}.use_original_dst") or False
            btp = self._bool(_get(d, "bind_to_port"), f"{path}.bind_to_port")
            dv1 = _get(d, "deprecated_v1")
            if btp is None and isinstance(dv1, dict):
                btp = self._bool(_get(dv1, "bind_to_port"), f"{path}.deprecated_v1.bind_to_port")
            fields["bind_to_port"] = True if btp is None else btp
            fields["transparent"] = self._bool(_get(d, "transparent"), f"{path}.transparent")
            fields["freebind"] = self._bool(_get(d, "freebind"), f"{path}.freebind")
            opts = self.socket_options(_get(d, "socket_options"), f"{path}.socket_options")
            for o in opts:
                if o.level == 0 and o.name == 19 and fields["transparent"] is None:
                    fields["transparent"] = bool(o.int_value)
                elif o.level == 0 and o.name == 15 and fields["freebind"] is None:
                    fields["freebind"] = bool(o.int_value)
            td = self._str(_get(d, "traffic_direction"), f"{path}.traffic_direction")
            fields["traffic_direction"] = None if td in (None, "UNSPECIFIED") else td
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1])
            problems.append(bad.message)
        lfs: list[ListenerFilter] = []
        try:
            for i, lf in enumerate(self._list(_get(d, "listener_filters"), f"{path}.listener_filters")):
                lfs.append(self.listener_filter(lf, f"{path}.listener_filters[{i}]"))
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1])
            problems.append(bad.message)
        chains: list[FilterChain] = []
        default_chain: FilterChain | None = None
        try:
            for i, fc in enumerate(self._list(_get(d, "filter_chains"), f"{path}.filter_chains")):
                chains.append(self.filter_chain(fc, f"{path}.filter_chains[{i}]", i))
            dfc = _get(d, "default_filter_chain")
            if dfc is not None:
                default_chain = self.filter_chain(dfc, f"{path}.default_filter_chain", -1)
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1])
            problems.append(bad.message)
        additional: list[Address] = []
        try:
            for i, aa in enumerate(self._list(_get(d, "additional_addresses"), f"{path}.additional_addresses")):
                aa = self._dict(aa, f"{path}.additional_addresses[{i}]")
                a = self.address(_get(aa, "address"), f"{path}.additional_addresses[{i}].address")
                if a is not None:
                    additional.append(a)
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1])
            problems.append(bad.message)
        matcher = _get(d, "filter_chain_matcher") is not None
        if matcher:
            self.warn(
                f"{path}: listener {name} selects filter chains with filter_chain_matcher (the unified matcher API); "
                "meshviz does not evaluate it",
                pos=pos,
            )
        if problems and state != "error":
            state = "error"
            error_detail = "meshviz: " + "; ".join(problems)
        self.listeners.append(
            Listener(
                name=name,
                address=address,
                state=state,
                error_detail=error_detail,
                origin=origin,
                listener_filters=tuple(lfs),
                filter_chains=tuple(chains),
                default_filter_chain=default_chain,
                filter_chain_matcher=matcher,
                additional_addresses=tuple(additional),
                version_info=version_info,
                source=self.ref_at(pos),
                **fields,
            )
        )

    def listener_filter(self, obj: Any, path: str) -> ListenerFilter:
        d = self._dict(obj, path)
        self.note_fields("listener filter", d)
        name = self._str(_get(d, "name"), f"{path}.name") or ""
        url, cfg = _typed(d)
        kind = _kind(name, url)
        mark = None
        if kind == ORIGINAL_SRC:
            mark = self._int(_get(cfg, "mark"), f"{path}.typed_config.mark")
            if _get(cfg, "bind_port"):
                self.warn(f"{path}: original_src bind_port is set (Envoy does not implement it; the port is not kept)")
        elif kind not in (ORIGINAL_DST, TLS_INSPECTOR, HTTP_INSPECTOR, PROXY_PROTOCOL):
            self.filters_by_name[f"listener filter {name}"] += 1
        ranges: list[tuple[int, int]] = []
        disabled_text: str | None = None
        fd = _get(d, "filter_disabled")
        if fd is not None:
            disabled_text = json.dumps(fd, sort_keys=True)
            rules = [fd]
            om = _get(fd, "or_match") if isinstance(fd, dict) else None
            if isinstance(om, dict):
                rules = self._list(_get(om, "rules"), f"{path}.filter_disabled.or_match.rules")
            for r in rules:
                dpr = _get(r, "destination_port_range") if isinstance(r, dict) else None
                if not isinstance(dpr, dict) or len(r) != 1:
                    ranges = []
                    break
                start = self._int(_get(dpr, "start"), f"{path}.filter_disabled.destination_port_range.start") or 0
                end = self._int(_get(dpr, "end"), f"{path}.filter_disabled.destination_port_range.end") or 0
                ranges.append((start, end))
        return ListenerFilter(
            name=name,
            type_url=url,
            kind=kind,
            mark=mark,
            disabled_ports=tuple(ranges),
            filter_disabled=disabled_text,
        )

    def filter_chain(self, obj: Any, path: str, index: int) -> FilterChain:
        d = self._dict(obj, path)
        self.note_fields("filter chain", d)
        name = self._str(_get(d, "name"), f"{path}.name")
        m = self._dict(_get(d, "filter_chain_match"), f"{path}.filter_chain_match")
        self.note_fields("filter_chain_match", m)
        mp = f"{path}.filter_chain_match"

        def nets(key: str) -> tuple[IPNetwork, ...]:
            return tuple(
                self.cidr(r, f"{mp}.{key}[{i}]") for i, r in enumerate(self._list(_get(m, key), f"{mp}.{key}"))
            )

        st = _get(m, "source_type")
        source_type = {0: "ANY", 1: "SAME_IP_OR_LOOPBACK", 2: "EXTERNAL"}.get(st, st) if isinstance(st, int) else st
        if source_type is None:
            source_type = "ANY"
        if source_type not in ("ANY", "SAME_IP_OR_LOOPBACK", "EXTERNAL"):
            raise _Bad(f"{mp}.source_type", f"unknown source_type {source_type!r}")
        match = FilterChainMatch(
            destination_port=self._int(_get(m, "destination_port"), f"{mp}.destination_port", maximum=65535),
            prefix_ranges=nets("prefix_ranges"),
            direct_source_prefix_ranges=nets("direct_source_prefix_ranges"),
            source_type=source_type,
            source_prefix_ranges=nets("source_prefix_ranges"),
            source_ports=tuple(
                self._int(p, f"{mp}.source_ports[{i}]", maximum=65535) or 0
                for i, p in enumerate(self._list(_get(m, "source_ports"), f"{mp}.source_ports"))
            ),
            server_names=tuple(
                (self._str(s, f"{mp}.server_names[{i}]") or "").lower()
                for i, s in enumerate(self._list(_get(m, "server_names"), f"{mp}.server_names"))
            ),
            transport_protocol=self._str(_get(m, "transport_protocol"), f"{mp}.transport_protocol") or "",
            application_protocols=tuple(
                self._str(s, f"{mp}.application_protocols[{i}]") or ""
                for i, s in enumerate(self._list(_get(m, "application_protocols"), f"{mp}.application_protocols"))
            ),
        )
        filters = tuple(
            self.network_filter(f, f"{path}.filters[{i}]")
            for i, f in enumerate(self._list(_get(d, "filters"), f"{path}.filters"))
        )
        ts = _get(d, "transport_socket")
        transport: str | None = None
        if isinstance(ts, dict):
            ts_name = _get(ts, "name")
            if not isinstance(ts_name, str):
                if ts_name is not None:
                    self.warn(f"{path}.transport_socket.name is not a string; ignored")
                ts_name = ""
            url, _cfg = _typed(ts)
            transport = "tls" if ("tls" in ts_name or (url and ".tls." in url)) else (ts_name or url)
        elif _get(d, "tls_context") is not None:
            transport = "tls"
        return FilterChain(name=name, index=index, match=match, filters=filters, transport_socket=transport)

    def network_filter(self, obj: Any, path: str) -> NetworkFilter:
        d = self._dict(obj, path)
        name = self._str(_get(d, "name"), f"{path}.name") or ""
        url, cfg = _typed(d)
        kind = _kind(name, url)
        cp = f"{path}.typed_config" if _get(d, "typed_config") is not None else f"{path}.config"
        if kind == TCP_PROXY:
            self.note_fields("tcp_proxy", cfg)
            if _get(cfg, "deprecated_v1") is not None:
                self.warn(f"{cp}: tcp_proxy deprecated_v1 routes are not modelled")
            return NetworkFilter(
                name=name,
                type_url=url,
                kind=kind,
                cluster=self._str(_get(cfg, "cluster"), f"{cp}.cluster"),
                weighted_clusters=self.weighted(_get(cfg, "weighted_clusters"), f"{cp}.weighted_clusters"),
            )
        if kind == HTTP_CONNECTION_MANAGER:
            self.note_fields("http_connection_manager", cfg)
            rds = self._dict(_get(cfg, "rds"), f"{cp}.rds")
            rc = _get(cfg, "route_config")
            inline = self.route_configuration(rc, f"{cp}.route_config", origin="inline") if rc is not None else None
            http_filters: list[str] = []
            mark: int | None = None
            hfs = _get(cfg, "http_filters")
            if isinstance(hfs, dict) and url is None:
                # v2 `config` Struct from YAML: a single filter written as an object, which Envoy accepted.
                hfs = [hfs]
            for i, hf in enumerate(self._list(hfs, f"{cp}.http_filters")):
                hf = self._dict(hf, f"{cp}.http_filters[{i}]")
                hname = self._str(_get(hf, "name"), f"{cp}.http_filters[{i}].name") or ""
                http_filters.append(hname)
                hurl, hcfg = _typed(hf)
                if _kind(hname, hurl) == HTTP_ORIGINAL_SRC:
                    mark = self._int(_get(hcfg, "mark"), f"{cp}.http_filters[{i}].typed_config.mark") or 0
            scoped = _get(cfg, "scoped_routes") is not None
            if scoped:
                self.warn(f"{cp}: http_connection_manager uses scoped_routes, which meshviz does not evaluate")
            return NetworkFilter(
                name=name,
                type_url=url,
                kind=kind,
                route_config_name=self._str(_get(rds, "route_config_name"), f"{cp}.rds.route_config_name"),
                route_config=inline,
                scoped_routes=scoped,
                http_filters=tuple(http_filters),
                http_original_src_mark=mark,
                use_remote_address=self._bool(_get(cfg, "use_remote_address"), f"{cp}.use_remote_address"),
                skip_xff_append=self._bool(_get(cfg, "skip_xff_append"), f"{cp}.skip_xff_append"),
                xff_num_trusted_hops=self._int(_get(cfg, "xff_num_trusted_hops"), f"{cp}.xff_num_trusted_hops"),
            )
        self.filters_by_name[f"network filter {name}"] += 1
        return NetworkFilter(name=name, type_url=url, kind=kind)

    def weighted(self, v: Any, path: str) -> tuple[WeightedCluster, ...]:
        d = self._dict(v, path)
        out = []
        for i, c in enumerate(self._list(_get(d, "clusters"), f"{path}.clusters")):
            c = self._dict(c, f"{path}.clusters[{i}]")
            out.append(
                WeightedCluster(
                    name=self._str(_get(c, "name"), f"{path}.clusters[{i}].name") or "",
                    weight=self._int(_get(c, "weight"), f"{path}.clusters[{i}].weight") or 0,
                )
            )
        return tuple(out)

    # ---- routes -----------------------------------------------------------

    def route_configuration(self, obj: Any, path: str, *, origin: str) -> RouteConfiguration:
        d = self._dict(obj, path)
        self.note_fields("route configuration", d)
        name = self._str(_get(d, "name"), f"{path}.name") or ""
        vhosts = []
        for i, vh in enumerate(self._list(_get(d, "virtual_hosts"), f"{path}.virtual_hosts")):
            vp = f"{path}.virtual_hosts[{i}]"
            vh = self._dict(vh, vp)
            self.note_fields("virtual host", vh)
            routes = tuple(
                self.route(r, f"{vp}.routes[{j}]") for j, r in enumerate(self._list(_get(vh, "routes"), f"{vp}.routes"))
            )
            vhosts.append(
                VirtualHost(
                    name=self._str(_get(vh, "name"), f"{vp}.name") or "",
                    domains=tuple(
                        (self._str(x, f"{vp}.domains[{j}]") or "").lower()
                        for j, x in enumerate(self._list(_get(vh, "domains"), f"{vp}.domains"))
                    ),
                    routes=routes,
                )
            )
        return RouteConfiguration(
            name=name,
            virtual_hosts=tuple(vhosts),
            ignore_port_in_host_matching=bool(
                self._bool(_get(d, "ignore_port_in_host_matching"), f"{path}.ignore_port_in_host_matching")
            ),
            origin=origin,
        )

    def route(self, obj: Any, path: str) -> Route:
        d = self._dict(obj, path)
        self.note_fields("route", d)
        m = self._dict(_get(d, "match"), f"{path}.match")
        self.note_fields("route match", m)
        sr = _get(m, "safe_regex")
        regex = self._str(_get(sr, "regex"), f"{path}.match.safe_regex.regex") if isinstance(sr, dict) else None
        if regex is None and isinstance(m.get("regex"), str):
            regex = m["regex"]
        other = None
        for key in ("path_match_policy", "grpc", "tls_context", "dynamic_metadata", "filter_state"):
            if _get(m, key) is not None:
                other = f"{key} (not evaluated)"
        headers = []
        for i, h in enumerate(self._list(_get(m, "headers"), f"{path}.match.headers")):
            headers.append(self.header_matcher(h, f"{path}.match.headers[{i}]"))
        match = RouteMatch(
            prefix=self._str(_get(m, "prefix"), f"{path}.match.prefix"),
            path=self._str(_get(m, "path"), f"{path}.match.path"),
            safe_regex=regex,
            path_separated_prefix=self._str(_get(m, "path_separated_prefix"), f"{path}.match.path_separated_prefix"),
            connect_matcher=_get(m, "connect_matcher") is not None,
            case_sensitive=self._bool(_get(m, "case_sensitive"), f"{path}.match.case_sensitive") is not False,
            headers=tuple(headers),
            other=other,
        )
        action: RouteAction
        ra = _get(d, "route")
        if ra is not None:
            ra = self._dict(ra, f"{path}.route")
            self.note_fields("route action", ra)
            wc = _get(ra, "weighted_clusters")
            if _get(ra, "cluster") is not None:
                action = RouteAction("cluster", cluster=self._str(_get(ra, "cluster"), f"{path}.route.cluster"))
            elif wc is not None:
                action = RouteAction(
                    "weighted_clusters", weighted_clusters=self.weighted(wc, f"{path}.route.weighted_clusters")
                )
            elif _get(ra, "cluster_header") is not None:
                action = RouteAction(
                    "cluster_header",
                    cluster_header=self._str(_get(ra, "cluster_header"), f"{path}.route.cluster_header"),
                )
            else:
                action = RouteAction("other")
        elif _get(d, "redirect") is not None:
            rd = self._dict(_get(d, "redirect"), f"{path}.redirect")
            action = RouteAction("redirect", redirect=json.dumps(rd, sort_keys=True))
        elif _get(d, "direct_response") is not None:
            dr = self._dict(_get(d, "direct_response"), f"{path}.direct_response")
            action = RouteAction(
                "direct_response",
                direct_response_status=self._int(_get(dr, "status"), f"{path}.direct_response.status"),
            )
        else:
            action = RouteAction("other")
        return Route(match=match, action=action, name=self._str(_get(d, "name"), f"{path}.name"))

    def header_matcher(self, obj: Any, path: str) -> HeaderMatcher:
        d = self._dict(obj, path)
        name = (self._str(_get(d, "name"), f"{path}.name") or "").lower()
        invert = bool(self._bool(_get(d, "invert_match"), f"{path}.invert_match"))
        simple = {
            "exact_match": "exact",
            "prefix_match": "prefix",
            "suffix_match": "suffix",
            "contains_match": "contains",
        }
        for key, kind in simple.items():
            v = _get(d, key)
            if v is not None:
                return HeaderMatcher(name, kind, self._str(v, f"{path}.{key}"), invert)
        srm = _get(d, "safe_regex_match")
        if isinstance(srm, dict):
            return HeaderMatcher(name, "regex", self._str(_get(srm, "regex"), f"{path}.safe_regex_match.regex"), invert)
        if _get(d, "present_match") is not None:
            return HeaderMatcher(name, "present", None, invert)
        sm = _get(d, "string_match")
        if isinstance(sm, dict):
            for key in ("exact", "prefix", "suffix", "contains"):
                v = _get(sm, key)
                if v is not None:
                    return HeaderMatcher(name, key, self._str(v, f"{path}.string_match.{key}"), invert)
            sre = _get(sm, "safe_regex")
            if isinstance(sre, dict):
                return HeaderMatcher(
                    name, "regex", self._str(_get(sre, "regex"), f"{path}.string_match.safe_regex"), invert
                )
        return HeaderMatcher(name, "other", json.dumps(d, sort_keys=True)[:200], invert)

    # ---- clusters ---------------------------------------------------------

    def cluster(self, obj: Any, path: str, *, state: str, version_info: str | None = None) -> None:
        try:
            d = self._dict(obj, path)
            name = self._str(_get(d, "name"), f"{path}.name")
            pos = self.locate(name)
            self.anchor = pos
            if not name:
                raise _Bad(f"{path}.name", "cluster without a name")
            self.note_fields("cluster", d)
            ct = _get(d, "cluster_type")
            ctype: str
            if isinstance(ct, dict):
                ctype = self._str(_get(ct, "name"), f"{path}.cluster_type.name") or "custom"
            else:
                t = _get(d, "type")
                if isinstance(t, int):
                    ctype = _CLUSTER_TYPES.get(t, str(t))
                else:
                    ctype = self._str(t, f"{path}.type") or "STATIC"
            endpoints: tuple[Endpoint, ...] = ()
            source = "none"
            la = _get(d, "load_assignment")
            if la is not None:
                endpoints = self.load_assignment(la, f"{path}.load_assignment").endpoints
                source = "load_assignment"
            hosts = _get(d, "hosts")
            if hosts is not None and not endpoints:
                eps = []
                for i, h in enumerate(self._list(hosts, f"{path}.hosts")):
                    a = self.address(h, f"{path}.hosts[{i}]")
                    if a is not None:
                        eps.append(Endpoint(a))
                endpoints = tuple(eps)
                source = "hosts"
            eds = self._dict(_get(d, "eds_cluster_config"), f"{path}.eds_cluster_config")
            odlb = self._dict(_get(d, "original_dst_lb_config"), f"{path}.original_dst_lb_config")
            uco = self._dict(_get(d, "upstream_connection_options"), f"{path}.upstream_connection_options")
            transport = None
            if _get(d, "transport_socket") is not None or _get(d, "tls_context") is not None:
                ts = _get(d, "transport_socket")
                ts_name = _get(ts, "name") if isinstance(ts, dict) else "tls"
                ts_name = ts_name if isinstance(ts_name, str) else ""
                transport = "tls" if "tls" in ts_name else ts_name
            if _get(d, "transport_socket_matches") is not None:
                transport = (transport + " + " if transport else "") + "transport_socket_matches"
            self.clusters.append(
                Cluster(
                    name=name,
                    type=str(ctype),
                    lb_policy=self._str(_get(d, "lb_policy"), f"{path}.lb_policy") or "ROUND_ROBIN",
                    endpoints=endpoints,
                    endpoints_source=source,
                    eds_service_name=self._str(_get(eds, "service_name"), f"{path}.eds_cluster_config.service_name"),
                    upstream_bind_config=self.bind_config(
                        _get(d, "upstream_bind_config"), f"{path}.upstream_bind_config"
                    ),
                    upstream_connection_options=tuple(sorted(_snake(k) for k in uco)),
                    original_dst_use_http_header=bool(
                        self._bool(_get(odlb, "use_http_header"), f"{path}.original_dst_lb_config.use_http_header")
                    ),
                    transport_socket=transport,
                    state=state,
                    version_info=version_info,
                    source=self.ref_at(pos),
                )
            )
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1].split("[")[0])

    def load_assignment(self, obj: Any, path: str, *, origin: str = "dynamic") -> ClusterLoadAssignment:
        d = self._dict(obj, path)
        self.note_fields("cluster_load_assignment", d)
        eps = []
        for i, lle in enumerate(self._list(_get(d, "endpoints"), f"{path}.endpoints")):
            lle = self._dict(lle, f"{path}.endpoints[{i}]")
            self.note_fields("locality lb endpoints", lle)
            for j, lbe in enumerate(self._list(_get(lle, "lb_endpoints"), f"{path}.endpoints[{i}].lb_endpoints")):
                p = f"{path}.endpoints[{i}].lb_endpoints[{j}]"
                lbe = self._dict(lbe, p)
                self.note_fields("lb endpoint", lbe)
                ep = self._dict(_get(lbe, "endpoint"), f"{p}.endpoint")
                a = self.address(_get(ep, "address"), f"{p}.endpoint.address")
                if a is None:
                    continue
                eps.append(
                    Endpoint(
                        address=a,
                        health_status=self._str(_get(lbe, "health_status"), f"{p}.health_status"),
                        hostname=self._str(_get(ep, "hostname"), f"{p}.endpoint.hostname"),
                    )
                )
        return ClusterLoadAssignment(
            cluster_name=self._str(_get(d, "cluster_name"), f"{path}.cluster_name") or "",
            endpoints=tuple(eps),
            origin=origin,
        )

    # ---- config dump sections ----------------------------------------------

    def section(self, cfg: Any, path: str) -> None:
        if not isinstance(cfg, dict):
            self.error(path, f"expected a config dump section object, got {type(cfg).__name__}")
            return
        url = cfg.get("@type")
        if not isinstance(url, str):
            self.error(path, "config dump section without @type")
            return
        kind = url.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
        self.seek_section(url)
        self.anchor = self.cursor
        self.sections.append(kind)
        handler = {
            "BootstrapConfigDump": self.bootstrap_dump,
            "ClustersConfigDump": self.clusters_dump,
            "ListenersConfigDump": self.listeners_dump,
            "RoutesConfigDump": self.routes_dump,
            "ScopedRoutesConfigDump": self.scoped_routes_dump,
            "SecretsConfigDump": self.secrets_dump,
            "EndpointsConfigDump": self.endpoints_dump,
        }.get(kind)
        if handler is None:
            self.warn(f"{path}: config dump section {kind} is not modelled", pos=self.cursor)
            return
        try:
            handler(cfg, path)
        except _Bad as bad:
            self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1].split("[")[0])

    def bootstrap_dump(self, cfg: dict[str, Any], path: str) -> None:
        b = self._dict(_get(cfg, "bootstrap"), f"{path}.bootstrap")
        self.note_fields("bootstrap", b)
        node = self._dict(_get(b, "node"), f"{path}.bootstrap.node")
        self.note_fields("node", node)
        self.node_id = self._str(_get(node, "id"), f"{path}.bootstrap.node.id")
        self.node_cluster = self._str(_get(node, "cluster"), f"{path}.bootstrap.node.cluster")
        md = self._dict(_get(node, "metadata"), f"{path}.bootstrap.node.metadata")
        for k, v in md.items():
            self.node_metadata.append(
                (k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))
            )
        admin = _get(b, "admin")
        if isinstance(admin, dict):
            self.admin = BootstrapAdmin(self.address(_get(admin, "address"), f"{path}.bootstrap.admin.address"))
        cm = self._dict(_get(b, "cluster_manager"), f"{path}.bootstrap.cluster_manager")
        self.bootstrap_bind = self.bind_config(
            _get(cm, "upstream_bind_config"), f"{path}.bootstrap.cluster_manager.upstream_bind_config"
        )
        sr = _get(b, "static_resources")
        if isinstance(sr, dict):
            self.bootstrap_static = {"path": f"{path}.bootstrap.static_resources", "value": sr}

    def listeners_dump(self, cfg: dict[str, Any], path: str) -> None:
        for i, e in enumerate(self._list(_get(cfg, "static_listeners"), f"{path}.static_listeners")):
            p = f"{path}.static_listeners[{i}]"
            e = self._dict(e, p)
            self.listener(_get(e, "listener"), f"{p}.listener", state="active", origin="static")
        states = (("active_state", "active"), ("warming_state", "warming"), ("draining_state", "draining"))
        for i, e in enumerate(self._list(_get(cfg, "dynamic_listeners"), f"{path}.dynamic_listeners")):
            p = f"{path}.dynamic_listeners[{i}]"
            e = self._dict(e, p)
            entry_name = _get(e, "name") if isinstance(_get(e, "name"), str) else None
            for key, state in states:
                st = _get(e, key)
                if st is None:
                    continue
                st = self._dict(st, f"{p}.{key}")
                self.listener(
                    _get(st, "listener"),
                    f"{p}.{key}.listener",
                    state=state,
                    origin="dynamic",
                    version_info=self._str(_get(st, "version_info"), f"{p}.{key}.version_info"),
                    entry_name=entry_name,
                )
            es = _get(e, "error_state")
            if es is not None:
                es = self._dict(es, f"{p}.error_state")
                details = self._str(_get(es, "details"), f"{p}.error_state.details") or "(no details)"
                failed = _get(es, "failed_configuration")
                if failed is None:
                    failed = {"name": entry_name or p}
                self.listener(
                    failed,
                    f"{p}.error_state.failed_configuration",
                    state="error",
                    origin="dynamic",
                    error_detail=details.strip(),
                    entry_name=entry_name,
                )
        # Envoy before 1.14 (v2 admin): separate lists per state.
        for key, state in (
            ("dynamic_active_listeners", "active"),
            ("dynamic_warming_listeners", "warming"),
            ("dynamic_draining_listeners", "draining"),
        ):
            for i, e in enumerate(self._list(_get(cfg, key), f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                e = self._dict(e, p)
                self.listener(
                    _get(e, "listener"),
                    f"{p}.listener",
                    state=state,
                    origin="dynamic",
                    version_info=self._str(_get(e, "version_info"), f"{p}.version_info"),
                )

    def clusters_dump(self, cfg: dict[str, Any], path: str) -> None:
        for key, state in (
            ("static_clusters", "static"),
            ("dynamic_active_clusters", "active"),
            ("dynamic_warming_clusters", "warming"),
        ):
            for i, e in enumerate(self._list(_get(cfg, key), f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                try:
                    e = self._dict(e, p)
                except _Bad as bad:
                    self.error(bad.path, bad.message)
                    continue
                self.cluster(
                    _get(e, "cluster"),
                    f"{p}.cluster",
                    state=state,
                    version_info=self._str(_get(e, "version_info"), f"{p}.version_info"),
                )

    def routes_dump(self, cfg: dict[str, Any], path: str) -> None:
        for key, origin in (("static_route_configs", "static"), ("dynamic_route_configs", "dynamic")):
            for i, e in enumerate(self._list(_get(cfg, key), f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                try:
                    e = self._dict(e, p)
                    rc_obj = _get(e, "route_config")
                    name = _get(rc_obj, "name") if isinstance(rc_obj, dict) else None
                    pos = self.locate(name if isinstance(name, str) else None)
                    self.anchor = pos
                    rc = self.route_configuration(rc_obj, f"{p}.route_config", origin=origin)
                    self.route_configs.append(replace(rc, source=self.ref_at(pos)))
                except _Bad as bad:
                    self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1].split("[")[0])

    def scoped_routes_dump(self, cfg: dict[str, Any], path: str) -> None:
        for key in ("inline_scoped_route_configs", "dynamic_scoped_route_configs"):
            items = self._list(_get(cfg, key), f"{path}.{key}")
            if items:
                self.warn(f"{path}.{key}: {len(items)} scoped route configuration(s) not modelled", pos=self.cursor)

    def secrets_dump(self, cfg: dict[str, Any], path: str) -> None:
        for key in ("static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets"):
            for i, e in enumerate(self._list(_get(cfg, key), f"{path}.{key}")):
                e = self._dict(e, f"{path}.{key}[{i}]")
                name = self._str(_get(e, "name"), f"{path}.{key}[{i}].name")
                if name:
                    self.secrets.append(name)

    def endpoints_dump(self, cfg: dict[str, Any], path: str) -> None:
        for key, origin in (("static_endpoint_configs", "static"), ("dynamic_endpoint_configs", "dynamic")):
            for i, e in enumerate(self._list(_get(cfg, key), f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                try:
                    e = self._dict(e, p)
                    self.endpoint_configs.append(
                        self.load_assignment(_get(e, "endpoint_config"), f"{p}.endpoint_config", origin=origin)
                    )
                except _Bad as bad:
                    self.error(bad.path, bad.message, key=bad.path.rsplit(".", 1)[-1].split("[")[0])

    # ---- top level ----------------------------------------------------------

    def items(self, items: list[Any], path: str) -> None:
        """A bare list (istioctl proxy-config ... -o json): listeners, clusters or route configurations."""
        for i, item in enumerate(items):
            p = f"{path}[{i}]"
            if not isinstance(item, dict):
                self.error(p, f"expected an object, got {type(item).__name__}")
                continue
            kind = _classify(item)
            if kind == "section":
                self.section(item, p)
            elif kind == "listener":
                self.add_section("listeners")
                self.listener(item, p, state="active", origin="dynamic")
            elif kind == "cluster":
                self.add_section("clusters")
                self.cluster(item, p, state="active")
            elif kind == "route":
                self.add_section("routes")
                try:
                    name = _get(item, "name")
                    pos = self.locate(name if isinstance(name, str) else None)
                    self.anchor = pos
                    rc = self.route_configuration(item, p, origin="dynamic")
                    self.route_configs.append(replace(rc, source=self.ref_at(pos)))
                except _Bad as bad:
                    self.error(bad.path, bad.message)
            elif kind == "endpoints":
                self.add_section("endpoints")
                try:
                    self.endpoint_configs.append(self.load_assignment(item, p))
                except _Bad as bad:
                    self.error(bad.path, bad.message)
            else:
                self.error(p, f"not a Listener, Cluster or RouteConfiguration (keys: {', '.join(sorted(item)[:8])})")

    def add_section(self, name: str) -> None:
        if name not in self.sections:
            self.sections.append(name)

    def top(self, obj: Any) -> None:
        if isinstance(obj, list):
            self.items(obj, "$")
            return
        if not isinstance(obj, dict):
            self.error("$", f"expected a JSON object or array, got {type(obj).__name__}")
            return
        configs = obj.get("configs")
        if configs is not None:
            if not isinstance(configs, list):
                self.error("configs", f"expected a list, got {type(configs).__name__}", key="configs")
                return
            for i, cfg in enumerate(configs):
                self.section(cfg, f"configs[{i}]")
            return
        known = False
        for key in ("listeners", "clusters", "routes", "route_configs", "endpoints"):
            v = obj.get(key)
            if v is None:
                continue
            known = True
            if not isinstance(v, list):
                self.error(key, f"expected a list, got {type(v).__name__}", key=key)
                continue
            self.items(v, key)
        if known:
            return
        kind = _classify(obj)
        if kind == "section":
            self.section(obj, "$")
        elif kind in ("listener", "cluster", "route", "endpoints"):
            self.items([obj], "$")
        else:
            self.error(
                "$",
                'not an Envoy config dump: expected {"configs": [...]} (admin /config_dump) '
                "or a list of listeners/clusters (istioctl proxy-config ... -o json)",
            )

    def bootstrap_resources(self) -> None:
        """Static resources from the bootstrap, when the dump has no Listeners/Clusters section of its own."""
        if self.bootstrap_static is None:
            return
        sr = self.bootstrap_static["value"]
        p = self.bootstrap_static["path"]
        try:
            if "ListenersConfigDump" not in self.sections:
                for i, lst in enumerate(self._list(_get(sr, "listeners"), f"{p}.listeners")):
                    self.listener(lst, f"{p}.listeners[{i}]", state="active", origin="static")
            if "ClustersConfigDump" not in self.sections:
                for i, c in enumerate(self._list(_get(sr, "clusters"), f"{p}.clusters")):
                    self.cluster(c, f"{p}.clusters[{i}]", state="static")
        except _Bad as bad:
            self.error(bad.path, bad.message)

    def finish(self) -> EnvoyConfig:
        self.bootstrap_resources()
        clusters = self.attach_eds()
        self.duplicate_warnings()
        for kind in sorted(self.unmodelled):
            counts = self.unmodelled[kind]
            listed = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items()))
            self.warn(f"{kind} fields present but not modelled: {listed}", pos=self.unmodelled_line[kind])
        if self.filters_by_name:
            listed = ", ".join(f"{k} ({n})" for k, n in sorted(self.filters_by_name.items()))
            self.warn(f"filters kept by name only, their configuration is not evaluated: {listed}")
        return EnvoyConfig(
            node_id=self.node_id,
            node_cluster=self.node_cluster,
            node_metadata=tuple(self.node_metadata),
            listeners=tuple(self.listeners),
            clusters=clusters,
            route_configs=tuple(self.route_configs),
            endpoint_configs=tuple(self.endpoint_configs),
            secrets=tuple(self.secrets),
            bootstrap_admin=self.admin,
            bootstrap_upstream_bind_config=self.bootstrap_bind,
            sections=tuple(self.sections),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
        )

    def attach_eds(self) -> tuple[Cluster, ...]:
        have_eds = "EndpointsConfigDump" in self.sections or "endpoints" in self.sections
        by_name = {la.cluster_name: la for la in self.endpoint_configs}
        out = []
        for c in self.clusters:
            if c.type == "EDS" and c.endpoints_source == "none":
                la = by_name.get(c.eds_service_name or "") or by_name.get(c.name)
                if la is not None:
                    c = replace(c, endpoints=la.endpoints, endpoints_source="eds")
                else:
                    c = replace(c, endpoints_source="eds-missing" if have_eds else "eds-not-dumped")
            out.append(c)
        return tuple(out)

    def duplicate_warnings(self) -> None:
        seen: Counter[tuple[str, str]] = Counter((lst.name, lst.state) for lst in self.listeners)
        for (name, state), n in sorted(seen.items()):
            if n > 1:
                self.warn(f"listener {name} appears {n} times in state {state}")


def _classify(item: Mapping[str, Any]) -> str:
    url = item.get("@type")
    if isinstance(url, str):
        msg = url.rsplit(".", 1)[-1]
        if msg.endswith("ConfigDump"):
            return "section"
        if msg == "Listener":
            return "listener"
        if msg == "Cluster":
            return "cluster"
        if msg == "RouteConfiguration":
            return "route"
        if msg == "ClusterLoadAssignment":
            return "endpoints"
    keys = {_snake(k) for k in item}
    if keys & {"filter_chains", "listener_filters", "use_original_dst", "default_filter_chain", "address"}:
        return "listener"
    if "virtual_hosts" in keys:
        return "route"
    if keys & {"connect_timeout", "lb_policy", "eds_cluster_config", "load_assignment", "cluster_type"} or (
        "type" in keys and "name" in keys
    ):
        return "cluster"
    if keys & {"static_listeners", "dynamic_listeners", "static_clusters", "dynamic_active_clusters"}:
        return "section"
    if "cluster_name" in keys and "endpoints" in keys:
        return "endpoints"
    return "unknown"


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def parse_config_dump(text: str, source: str = "<config_dump>") -> EnvoyParseResult:
    """Parse an Envoy config dump (redacting it first); never raises on bad input.

    The result is immutable and kept for the last few texts: a story, its fix's plans, the comparison and the
    explorer ask about the same dump many times."""
    red = redact(text)
    if red.error is not None:
        exc = red.error
        loc = _Locator(red.text)
        err = ParseError(
            source, exc.lineno, exc.colno, loc.line_text(exc.lineno, exc.colno), f"not valid JSON: {exc.msg}"
        )
        config = EnvoyConfig(redactions=red.count, errors=(err,))
        return EnvoyParseResult(config, (err,), ())
    p = _Parser(red.text, source)
    if red.count:
        p.warn(f"{red.count} secret value(s) redacted (replaced by the marker) before parsing")
    p.top(red.obj)
    config = p.finish()
    config = replace(config, redactions=red.count)
    return EnvoyParseResult(config, config.errors, config.warnings)
