"""Plain-English explanations of policy rules and routes, for the explorer and the diffs."""

from __future__ import annotations

from meshviz.engine.core.wording import net_text, number_text
from meshviz.engine.routing.model import TABLE_IDS, PolicyRule, Route, RouteType, RuleAction


def _table_name(table: int | None, name: str | None) -> str:
    if name and not name.isdigit():
        return f"table {name}" if name not in TABLE_IDS else f"table {name} ({TABLE_IDS[name]})"
    if table is None:
        return "table ?"
    for n, i in TABLE_IDS.items():
        if i == table and n != "unspec":
            return f"table {n} ({table})"
    return f"table {table}"


def explain_policy_rule(rule: PolicyRule) -> str:
    """`ip rule` entry in words: "priority N: <selector> -> <action>"."""
    sel: list[str] = []
    if rule.src is not None:
        sel.append(f"from {net_text(rule.src)}")
    if rule.dst is not None:
        sel.append(f"to {net_text(rule.dst)}")
    if rule.fwmark is not None:
        mask = f" under mask {rule.fwmask:#x}" if rule.fwmask != 0xFFFFFFFF else ""
        sel.append(f"with fwmark {number_text(str(rule.fwmark))}{mask}")
    if rule.iif is not None:
        sel.append(f"arriving on {rule.iif}")
    if rule.oif is not None:
        sel.append(f"leaving via {rule.oif}")
    if rule.uidrange is not None:
        lo, hi = rule.uidrange
        sel.append(f"sent by uid {lo}" if lo == hi else f"sent by uids {lo}-{hi}")
    if rule.ipproto is not None:
        sel.append(f"of protocol {rule.ipproto}")
    if rule.sport is not None:
        lo, hi = rule.sport
        sel.append(f"from port {lo}" if lo == hi else f"from ports {lo}-{hi}")
    if rule.dport is not None:
        lo, hi = rule.dport
        sel.append(f"to port {lo}" if lo == hi else f"to ports {lo}-{hi}")
    if rule.tos is not None:
        sel.append(f"with TOS {rule.tos:#x}")
    who = "every packet" if not sel else "packets " + ", ".join(sel)
    if rule.not_:
        who = f"packets NOT matching ({', '.join(sel) or 'everything'})"
    if rule.action == RuleAction.LOOKUP:
        action = f"look up {_table_name(rule.table, rule.table_name)}"
        if rule.suppress_prefixlength is not None:
            action += (
                f", ignoring routes with a prefix length of {rule.suppress_prefixlength} or less"
                " (suppress_prefixlength)"
            )
    elif rule.action == RuleAction.GOTO:
        action = f"skip to the rule with priority {rule.goto}"
    elif rule.action == RuleAction.NOP:
        action = "do nothing (nop), continue with the next rule"
    elif rule.action == RuleAction.BLACKHOLE:
        action = "silently drop (blackhole)"
    elif rule.action == RuleAction.UNREACHABLE:
        action = "refuse: network unreachable"
    else:
        action = "refuse: administratively prohibited"
    return f"priority {rule.priority}: {who} -> {action}"


def explain_route(route: Route) -> str:
    """One route in words: "table X: <destination> -> <what happens>"."""
    table = _table_name(route.table, route.table_name)
    dst = "every destination" if route.dst.prefixlen == 0 else f"{net_text(route.dst)}"
    dev = f" on {route.dev}" if route.dev else ""
    if route.type == RouteType.LOCAL:
        what = f"is delivered locally (local route{dev})"
    elif route.type == RouteType.BROADCAST:
        what = f"is a broadcast address{dev}"
    elif route.type == RouteType.MULTICAST:
        what = f"is multicast{dev}"
    elif route.type == RouteType.ANYCAST:
        what = f"is an anycast address of this host{dev}"
    elif route.type == RouteType.BLACKHOLE:
        what = "is silently dropped (blackhole)"
    elif route.type == RouteType.UNREACHABLE:
        what = "is refused: host unreachable"
    elif route.type == RouteType.PROHIBIT:
        what = "is refused: administratively prohibited"
    elif route.type == RouteType.THROW:
        what = "is not in this table (throw): the lookup continues with the next policy rule"
    elif route.type == RouteType.NAT:
        what = "is translated (nat route, not simulated)"
    elif route.via is not None:
        what = f"is sent to gateway {route.via}{' via ' + route.dev if route.dev else ''}"
    else:
        what = f"is directly reachable{dev}"
    extra: list[str] = []
    if route.src is not None:
        extra.append(f"preferred source {route.src}")
    if route.scope is not None:
        extra.append(f"scope {route.scope}")
    if route.metric:
        extra.append(f"metric {route.metric}")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{table}: {dst} {what}{tail}"


__all__ = ["explain_policy_rule", "explain_route"]
