"""Envoy's objects from their JSON: listeners (with filter chains, listener and network filters), route
configurations, routes and clusters."""

from __future__ import annotations

import json
from typing import Any

from meshviz.engine.core.model import IPNetwork
from meshviz.engine.envoy.keys import _get
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
    Cluster,
    ClusterLoadAssignment,
    Endpoint,
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
    VirtualHost,
    WeightedCluster,
)
from meshviz.engine.envoy.parse_base import _CLUSTER_TYPES, _Bad, _kind, _ParserBase, _snake, _typed


class _ObjectParser(_ParserBase):
    """Listeners (with their filter chains and filters), routes and clusters, each from its JSON object."""

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
