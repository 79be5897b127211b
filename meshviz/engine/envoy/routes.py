"""HTTP route selection: virtual host by domain (exact, suffix, prefix wildcards), then the first route whose path and
headers match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from meshviz.engine.envoy.model import (
    Route,
    RouteConfiguration,
    VirtualHost,
)

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
