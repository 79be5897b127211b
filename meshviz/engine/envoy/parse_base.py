"""The config-dump parser's foundations: field access in either case, extension kinds, the fields each object
understands, locating things in the text for line numbers, reporting, and scalars and addresses."""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import IPNetwork, SourceRef
from meshviz.engine.envoy.keys import _camel, _get
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
    Listener,
    RouteConfiguration,
    SocketOption,
)

# --------------------------------------------------------------------------
# Field access: snake_case or camelCase
# --------------------------------------------------------------------------

_SNAKE_RE = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SNAKE_CACHE: dict[str, str] = {}


def _snake(key: str) -> str:
    s = _SNAKE_CACHE.get(key)
    if s is None:
        s = _SNAKE_RE.sub(r"_\1", key).lower()
        if len(_SNAKE_CACHE) < 50_000:
            _SNAKE_CACHE[key] = s
    return s


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


class _ParserBase:
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
