"""`ip route show table all` output (and transcripts of `ip route add ...`) into Routes, with line/column errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family, IPAddress, SourceRef
from meshviz.engine.routing.ip_rule import _lines
from meshviz.engine.routing.iproute2 import (
    _ADD_VERBS,
    _ERROR_OUTPUT_RE,
    _addr,
    _Bad,
    _Command,
    _Cursor,
    _net,
    _offset_tokens,
    _parse_command,
    _parse_uint,
    _Section,
    _split_prompt,
    _Tok,
    _uint,
    _whole,
    table_id,
)
from meshviz.engine.routing.model import TABLE_IDS, Route, RouteType


@dataclass(frozen=True)
class RoutesParseResult:
    routes: tuple[Route, ...]
    table_names: tuple[tuple[str, int], ...] = ()
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()


# --------------------------------------------------------------------------
# ip route
# --------------------------------------------------------------------------

_ROUTE_TYPE_WORDS = {t.value: t for t in RouteType}
# Attributes that never change which route the kernel picks: value-taking ones.
_IGNORED_WITH_VALUE = {
    "mtu",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "initcwnd",
    "initrwnd",
    "ssthresh",
    "rto_min",
    "hoplimit",
    "features",
    "quickack",
    "congctl",
    "fastopen_no_cookie",
    "expires",
    "error",
    "pref",
    "uid",
    "age",
    "used",
    "users",
    "ipid",
    "weight",
    "ttl-propagate",
    "mark",
}
# ... and bare flags.
_IGNORED_FLAGS = {
    "onlink",
    "pervasive",
    "offload",
    "trap",
    "notify",
    "unresolved",
    "rt_offload",
    "rt_trap",
    "rt_offload_failed",
    "cache",
    "<local>",
    "<redirected>",
    "<redirect>",
}
_LOCK_ATTRS = {
    "mtu",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "initcwnd",
    "initrwnd",
    "ssthresh",
    "rto_min",
    "hoplimit",
    "congctl",
}


def _default_scope(rtype: RouteType, has_gw: bool, family: int) -> str | None:
    """iproute2's scope for `ip route add` without `scope`."""
    if family == 6:
        return None
    if rtype in (RouteType.LOCAL, RouteType.NAT):
        return "host"
    if rtype in (RouteType.BROADCAST, RouteType.MULTICAST, RouteType.ANYCAST):
        return "link"
    if rtype == RouteType.UNICAST and not has_gw:
        return "link"
    return None


def _parse_route_line(
    toks: list[_Tok],
    line_len: int,
    section: _Section,
    *,
    add_form: bool,
    table_ids: Mapping[str, int] | None,
    names: dict[str, int],
    warn: list[str],
) -> Route | None:
    """One route; None when the route is dead (skipped with a warning)."""
    cur = _Cursor(toks, line_len)
    if not cur.more():
        raise _Bad(1, "empty route")
    rtype = RouteType.UNICAST
    tok = cur.peek()
    if add_form and tok is not None and tok[0] == "to":
        cur.take()
        tok = cur.peek()
    if tok is not None and tok[0] in _ROUTE_TYPE_WORDS:
        rtype = _ROUTE_TYPE_WORDS[tok[0]]
        cur.take()
        tok = cur.peek()
    if add_form and tok is not None and tok[0] == "to":
        cur.take()
        tok = cur.peek()
    if tok is None:
        raise _Bad(line_len + 1, "route has no destination")
    cur.take()
    dst_tok = tok
    dst_net = _net(dst_tok, section.family, strict=add_form)
    family: int | None = dst_net.version if dst_net is not None else None

    via: IPAddress | None = None
    dev = section.dev
    table: int | None = None
    table_name: str | None = None
    proto = section.proto
    scope = section.scope
    src: IPAddress | None = None
    metric = 0
    dead = False
    nexthops: list[tuple[IPAddress | None, str | None]] = []
    in_nexthop = False
    v6_only = False

    while cur.more():
        tok = cur.take()
        key = tok[0]
        if key == "via":
            val = cur.value(tok)
            if val[0] in ("inet", "inet6"):
                val = cur.value(val)
            gw = _addr(val)
            if in_nexthop:
                nexthops[-1] = (gw, nexthops[-1][1])
            else:
                via = gw
        elif key in ("dev", "oif"):
            val = cur.value(tok)
            if in_nexthop:
                nexthops[-1] = (nexthops[-1][0], val[0])
            else:
                dev = val[0]
        elif key == "nexthop":
            in_nexthop = True
            nexthops.append((None, None))
        elif key == "table":
            val = cur.value(tok)
            table = table_id(val[0], table_ids)
            if _parse_uint(val[0]) is None:
                table_name = val[0]
                names.setdefault(val[0], table)
        elif key in ("proto", "protocol"):
            proto = cur.value(tok)[0]
        elif key == "scope":
            scope = cur.value(tok)[0]
        elif key == "src":
            src = _addr(cur.value(tok))
        elif key in ("metric", "priority", "preference"):
            metric = _uint(cur.value(tok), key)
        elif key == "dead":
            dead = True
        elif key == "linkdown":
            warn.append("linkdown: the kernel keeps using this route unless ignore_routes_with_linkdown=1")
        elif key in ("realms", "realm", "nhid"):
            cur.value(tok)
            warn.append(f"{key} is not simulated; skipped")
        elif key in _IGNORED_FLAGS:
            pass
        elif key in _IGNORED_WITH_VALUE:
            val = cur.value(tok)
            if key == "pref" and val[0] in ("low", "medium", "high"):
                v6_only = True  # router preference exists only for IPv6 routes
            if key in _LOCK_ATTRS and val[0] == "lock":
                cur.value(val)
        elif key == "from":
            raise _Bad(tok[1], "source-specific routes (`from PREFIX`) are not simulated")
        elif key in ("tos", "dsfield"):
            raise _Bad(tok[1], "routes with a TOS selector are not simulated")
        elif key == "encap":
            raise _Bad(tok[1], "lightweight tunnel encapsulation is not simulated")
        else:
            raise _Bad(tok[1], f"unexpected token {key!r} in ip route")

    if nexthops:
        first = nexthops[0]
        if via is None and dev is None:
            via, dev = first
        warn.append(
            f"multipath route with {len(nexthops)} nexthops: only the first "
            f"({'via ' + str(first[0]) + ' ' if first[0] else ''}dev {first[1]}) is simulated"
        )
    if via is not None:
        if family is not None and via.version != family and not (family == 4 and via.version == 6):
            raise _Bad(dst_tok[1], f"gateway {via} is not of the destination's family")
        if family is None and via.version == 6:
            family = 6
    if family is None:
        # `default` in `ip route show table all` output (both families): IPv6
        # routes always carry `pref`, and their gateway/src are IPv6.
        if v6_only or (src is not None and src.version == 6):
            family = 6
        else:
            family = section.family or 4
    elif v6_only and family != 6:
        raise _Bad(dst_tok[1], "`pref` is an IPv6 route attribute but the destination is IPv4")
    dst = dst_net if dst_net is not None else _whole(family)
    if table is None:
        table = section.table if section.table is not None else TABLE_IDS["main"]
        table_name = section.table_name
    if table_name is None:
        for n, tid in TABLE_IDS.items():
            if tid == table:
                table_name = n
    if add_form and scope is None:
        scope = _default_scope(rtype, via is not None, family)
    if dead:
        warn.append("nexthop is dead: the kernel skips this route during lookups; route dropped")
        return None
    return Route(
        table=table,
        type=rtype,
        dst=dst,
        dev=dev,
        via=via,
        src=src,
        scope=scope,
        proto=proto,
        metric=metric,
        table_name=table_name,
    )


def _route_section(cmd: _Command, table_ids: Mapping[str, int] | None, names: dict[str, int]) -> _Section:
    section = _Section(kind="route", family=cmd.family, command=cmd.text)
    args = cmd.args
    i = 0
    while i < len(args):
        key = args[i][0]
        val = args[i + 1][0] if i + 1 < len(args) else None
        if key == "table" and val is not None:
            if val not in ("all", "0", "unspec"):
                section.table = table_id(val, table_ids)
                if _parse_uint(val) is None:
                    section.table_name = val
                    names.setdefault(val, section.table)
            i += 2
        elif key in ("dev", "oif") and val is not None:
            section.dev = val
            i += 2
        elif key in ("proto", "protocol") and val is not None:
            section.proto = val
            i += 2
        elif key == "scope" and val is not None:
            section.scope = val
            i += 2
        else:
            i += 1
    return section


def parse_ip_routes(
    text: str,
    source: str = "<ip route>",
    table_ids: Mapping[str, int] | None = None,
    family: Family | None = None,
) -> RoutesParseResult:
    """Parse `ip route show [table X|all]` output and/or `ip route add ...` commands."""
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    routes: list[Route] = []
    names: dict[str, int] = {}
    hint = 6 if family == Family.IPV6 else 4 if family == Family.IPV4 else None  # the evidence's own family
    section = _Section(family=hint)
    pending: Route | None = None  # a multipath route whose nexthop lines may follow
    seen: set[Route] = set()

    for lineno, line, shown, error, warning in _lines(text, source, errors, warnings):
        if _ERROR_OUTPUT_RE.match(line):
            if section.kind in (None, "route"):
                warning("command error output skipped")
            continue
        had_prompt, pchar, rest = _split_prompt(line)
        toks = _offset_tokens(line, rest)
        if had_prompt and not toks:
            continue
        cmd = _parse_command(toks, rest.strip()) if toks else None
        if cmd is None and (had_prompt or toks[0][0] == "sudo"):
            if pchar == "#" or toks[0][0].startswith("#"):
                continue
            section = _Section(kind="other", command=rest.strip())
            continue
        if cmd is None and line.lstrip().startswith(("#", ";", "//")):
            continue

        add_form = False
        if cmd is not None:
            if cmd.kind == "route" and cmd.verb == "list":
                section = _route_section(cmd, table_ids, names)
                continue
            if cmd.kind == "route" and cmd.verb in _ADD_VERBS:
                add_form = True
                route_toks = cmd.args
                section = _Section(kind="route", family=cmd.family or hint, command=cmd.text)
                if cmd.verb in ("change", "chg", "test"):
                    error(toks[0][1], f"`ip route {cmd.verb}` is not replayed")
                    continue
            elif cmd.kind == "route" and cmd.verb == "get":
                section = _Section(kind="route_get", family=cmd.family or hint, command=cmd.text)
                continue
            elif cmd.kind == "route":
                error(
                    toks[0][1],
                    f"`ip route {cmd.verb}` changes routes in a way that is not replayed; "
                    "paste the `ip route show table all` output instead",
                )
                section = _Section(kind="other", command=cmd.text, warned=True)
                continue
            else:
                section = _Section(kind=cmd.kind, family=cmd.family or hint, command=cmd.text)
                continue
        else:
            if section.kind == "rule":
                continue
            if section.kind in ("other", "route_get"):
                if not section.warned:
                    what = (
                        "`ip route get` answers, not table entries"
                        if section.kind == "route_get"
                        else f"not ip route output (`{section.command}`)"
                    )
                    warning(f"skipped: {what}")
                    section.warned = True
                continue
            route_toks = toks

        # multipath continuation: `\tnexthop via X dev Y weight 1`
        if route_toks and route_toks[0][0] == "nexthop" and cmd is None:
            if pending is None:
                error(route_toks[0][1], "nexthop line without a route before it")
            elif pending.dev is None and pending.via is None:
                try:
                    nh = _parse_route_line(
                        [("0.0.0.0/0", 1), *route_toks[1:]],
                        len(line),
                        _Section(kind="route"),
                        add_form=False,
                        table_ids=table_ids,
                        names=names,
                        warn=[],
                    )
                except _Bad as bad:
                    error(bad.column, bad.message)
                    continue
                if nh is not None:
                    routes[-1] = replace(pending, dev=nh.dev, via=nh.via)
                    pending = routes[-1]
                    warning(
                        "multipath route: only its first nexthop "
                        f"({'via ' + str(nh.via) + ' ' if nh.via else ''}dev {nh.dev}) is simulated"
                    )
            continue

        route_warnings: list[str] = []
        try:
            route = _parse_route_line(
                route_toks,
                len(line),
                section,
                add_form=add_form,
                table_ids=table_ids,
                names=names,
                warn=route_warnings,
            )
        except _Bad as bad:
            error(bad.column, bad.message)
            pending = None
            continue
        for msg in route_warnings:
            warning(msg)
        if route is None:
            pending = None
            continue
        if route in seen:
            # The same entry twice (e.g. `ip route show table all` already lists
            # IPv6 routes that a following `ip -6 route show table all` repeats).
            pending = None
            continue
        seen.add(route)
        route = replace(route, ref=SourceRef(source, lineno, shown))
        routes.append(route)
        pending = route

    return RoutesParseResult(
        routes=tuple(routes),
        table_names=tuple(names.items()),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
