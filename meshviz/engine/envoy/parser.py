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

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.gcpause import gc_paused
from meshviz.engine.envoy.keys import _get
from meshviz.engine.envoy.model import (
    BootstrapAdmin,
    Cluster,
    EnvoyConfig,
    EnvoyParseResult,
)
from meshviz.engine.envoy.parse_base import _Bad, _Locator, _snake
from meshviz.engine.envoy.parse_objects import _ObjectParser
from meshviz.engine.envoy.redact import redact


class _Parser(_ObjectParser):
    """A whole config dump: its sections (bootstrap, listeners, clusters, routes, secrets, endpoints), then the model."""

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
    explorer ask about the same dump many times.  A big mesh's dump makes ~10^6 objects that hold no cycles: the
    cyclic collector is paused while they are made (a third of the parse otherwise)."""
    with gc_paused():
        return _parse_config_dump(text, source)


def _parse_config_dump(text: str, source: str) -> EnvoyParseResult:
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


__all__ = ["parse_config_dump"]
