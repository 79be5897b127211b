"""Plain-language explanations of parsed rules, policy rules and routes.

    explain_rule(rule)          "TCP to any address except 127.0.0.1 -> transparently hand to port 15006 and set mark 1337"
    explain_policy_rule(rule)   "priority 32765: packets with fwmark 1337 (0x539) -> look up table 133"
    explain_route(route)        "table 133: every destination is delivered locally (local route on lo)"

Every match and target the parser knows is described; a match the simulator does not model (`-m set`, `-m limit`,
...) is described generically and says so ("unmodelled match -m set --match-set ..."), it is never dropped.  A
sentence is "conditions -> action": the conditions in iptables-save order (protocol, addresses, interfaces,
fragments, then each match module), the action from the target.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from meshviz.engine.iptables_spec import TARGETS, UNPARSED_MODULE
from meshviz.engine.matches import _compile_module
from meshviz.engine.model import (
    BUILTIN_CHAINS,
    TABLE_IDS,
    AddrCriterion,
    IfaceCriterion,
    Match,
    MatchOption,
    PolicyRule,
    Route,
    RouteType,
    Rule,
    RuleAction,
    Target,
)

_PROTO_NAMES = {
    "tcp": "TCP",
    "udp": "UDP",
    "icmp": "ICMP",
    "ipv6-icmp": "ICMPv6",
    "icmpv6": "ICMPv6",
    "sctp": "SCTP",
    "dccp": "DCCP",
    "udplite": "UDP-Lite",
    "esp": "ESP",
    "ah": "AH",
    "gre": "GRE",
    "all": "every protocol",
}

#: Targets that do not change where a packet goes (the simulator reports them and continues).
_NO_PATH_EFFECT = {
    "CLASSIFY": "set the traffic-control class",
    "DSCP": "rewrite the DSCP field",
    "TOS": "rewrite the TOS field",
    "TTL": "rewrite the TTL",
    "HL": "rewrite the hop limit",
    "TCPMSS": "clamp the TCP MSS option",
    "CHECKSUM": "fill in the checksum",
    "CONNSECMARK": "copy security marks",
    "SECMARK": "set a security mark",
    "AUDIT": "write an audit record",
    "IDLETIMER": "arm an idle timer",
    "LED": "blink an LED",
    "SET": "add/remove addresses in an ipset",
    "ECN": "rewrite the ECN bits",
    "TCPOPTSTRIP": "strip TCP options",
    "RATEEST": "estimate a rate",
    "HMARK": "set the mark from a hash of the packet",
}


# --------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------


def _net(text: object) -> str:
    """`127.0.0.1/32` -> `127.0.0.1`; networks stay networks."""
    try:
        n = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return str(text)
    if n.prefixlen == n.max_prefixlen:
        return str(n.network_address)
    if n.prefixlen == 0:
        return "any address"
    return str(n)


def _value_and_mask(text: str) -> tuple[int, str] | None:
    """`value[/mask]` as iptables accepts it (decimal or 0x hex): the value, and the mask as shown (`0x...`, or the
    text when it is not a number; empty when there is none or it is all ones). None when the value is not a number."""
    value, _, mask = text.partition("/")
    try:
        v = int(value, 0)
    except ValueError:
        return None
    if not mask:
        return v, ""
    try:
        m = int(mask, 0)
    except ValueError:
        return v, mask
    return v, "" if m == 0xFFFFFFFF else f"{m:#x}"


def _num(text: str) -> str:
    """A mark or id as iptables accepts it (decimal or 0x hex) shown as `1337 (0x539)`; masks kept."""
    parsed = _value_and_mask(text)
    if parsed is None:
        return text
    v, mask = parsed
    shown = f"{v} ({v:#x})" if v > 9 else str(v)
    return f"{shown} under mask {mask}" if mask else shown


def _mark_value(text: str) -> str:
    """A mark shown the way the brief's example reads: `1337/0xffffffff` -> `1337`."""
    parsed = _value_and_mask(text)
    if parsed is None:
        return text
    v, mask = parsed
    return f"{v} (mask {mask})" if mask else str(v)


def _ports(text: str) -> str:
    t = text.replace(":", "-")
    if "," in t:
        return f"ports {t}"
    return f"ports {t}" if "-" in t else f"port {t}"


def _opts_text(options: tuple[MatchOption, ...]) -> str:
    parts: list[str] = []
    for o in options:
        if o.negated:
            parts.append("!")
        parts.append(f"--{o.name}")
        parts.extend(o.values)
    return " ".join(parts)


def _val(o: MatchOption) -> str:
    return " ".join(o.values)


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def _addr(c: AddrCriterion, direction: str) -> str:
    where = _net(c.network)
    if c.negated:
        return f"{direction} any address except {where}"
    return f"{direction} {where}"


def _iface(c: IfaceCriterion, inbound: bool) -> str:
    name = c.name[:-1] + "*" if c.name.endswith("+") else c.name
    verb = "arriving on" if inbound else "leaving via"
    if c.negated:
        return f"{verb} any interface except {name}"
    return f"{verb} {name}"


def _port_match(m: Match) -> list[str]:
    out: list[str] = []
    for o in m.options:
        if o.name in ("dport", "sport"):
            direction = "to" if o.name == "dport" else "from"
            if o.negated:
                out.append(f"{direction} any port except {_val(o).replace(':', '-')}")
            else:
                out.append(f"{direction} {_ports(_val(o))}")
        elif o.name == "syn":
            out.append("that are not connection openings (SYN)" if o.negated else "opening a connection (SYN)")
        elif o.name == "tcp-flags" and len(o.values) == 2:
            mask, comp = o.values
            neg = "not " if o.negated else ""
            out.append(f"whose TCP flags {mask} are {neg}exactly {comp} set")
        elif o.name == "tcp-option":
            out.append(f"{'without' if o.negated else 'with'} TCP option {_val(o)}")
        else:
            out.append(f"{'not ' if o.negated else ''}{o.name} {_val(o)}")
    return out


def _multiport(m: Match) -> list[str]:
    out = []
    for o in m.options:
        direction = {"dports": "to", "sports": "from", "ports": "from or to"}.get(o.name, o.name)
        ports = _val(o).replace(":", "-")
        out.append(f"{direction} {'any port except' if o.negated else 'ports'} {ports}")
    return out


def _owner(m: Match) -> list[str]:
    out = []
    for o in m.options:
        if o.name in ("uid-owner", "gid-owner"):
            what = "uid" if o.name == "uid-owner" else "gid"
            ids = _val(o).replace(":", "-")
            if o.negated:
                out.append(f"sent by a local process not running as {what} {ids}")
            else:
                out.append(f"sent by a local process running as {what} {ids}")
        elif o.name == "socket-exists":
            out.append("not from a local socket" if o.negated else "from a local socket")
        elif o.name == "suppl-groups":
            out.append("(counting supplementary groups)")
    return out


def _mark(m: Match, what: str) -> list[str]:
    out = []
    for o in m.options:
        if o.name == "mark":
            if o.negated:
                out.append(f"whose {what} is not {_num(_val(o))}")
            else:
                out.append(f"whose {what} is {_num(_val(o))}")
    return out


_STATE_WORDS = {
    "NEW": "a new connection",
    "ESTABLISHED": "an established connection",
    "RELATED": "related to a known connection",
    "INVALID": "invalid",
    "UNTRACKED": "untracked",
    "SNAT": "source-NATed",
    "DNAT": "destination-NATed",
}


def _ctstate(o: MatchOption) -> str:
    states = _val(o).split(",")
    words = " or ".join(_STATE_WORDS.get(s, s) for s in states)
    if o.negated:
        return f"not in conntrack state {','.join(states)} (not {words})"
    return f"in conntrack state {','.join(states)} ({words})"


def _conntrack(m: Match) -> list[str]:
    out = []
    for o in m.options:
        neg = "not " if o.negated else ""
        if o.name in ("ctstate", "state"):
            out.append(_ctstate(o))
        elif o.name == "ctdir":
            out.append(f"in the {_val(o).lower()} direction of its connection")
        elif o.name == "ctproto":
            out.append(f"whose connection is {neg}protocol {_val(o)}")
        elif o.name in ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"):
            which = {"ctorigsrc": "original source", "ctorigdst": "original destination"}.get(o.name)
            which = which or {"ctreplsrc": "reply source", "ctrepldst": "reply destination"}[o.name]
            out.append(f"whose connection's {which} is {neg}{_net(_val(o))}")
        elif o.name.endswith("port"):
            out.append(f"whose connection's {o.name[2:-4]} {o.name[-4:]} is {neg}{_val(o)}")
        elif o.name == "ctstatus":
            out.append(f"whose conntrack status is {neg}{_val(o)}")
        elif o.name == "ctexpire":
            out.append(f"whose conntrack entry expires {neg}in {_val(o)} s")
        else:
            out.append(f"conntrack {'! ' if o.negated else ''}--{o.name} {_val(o)}")
    return out


def _socket(m: Match) -> list[str]:
    text = "belonging to an existing local socket"
    extra = []
    if m.option("transparent"):
        extra.append("only IP_TRANSPARENT sockets")
    if m.option("nowildcard"):
        extra.append("wildcard listeners count too")
    if extra:
        text += f" ({', '.join(extra)})"
    if m.option("restore-skmark"):
        text += ", restoring the socket's mark onto the packet"
    return [text]


def _addrtype(m: Match) -> list[str]:
    out = []
    for o in m.options:
        if o.name in ("src-type", "dst-type"):
            which = "source" if o.name == "src-type" else "destination"
            types = _val(o)
            out.append(f"whose {which} address type is {'not ' if o.negated else ''}{types}")
        elif o.name == "limit-iface-in":
            out.append("(address type judged on the incoming interface only)")
        elif o.name == "limit-iface-out":
            out.append("(address type judged on the outgoing interface only)")
    return out


def _statistic(m: Match) -> list[str]:
    mode = m.option("mode")
    prob = m.option("probability")
    every = m.option("every")
    packet = m.option("packet")
    if mode and _val(mode) == "random" and prob:
        neg = "not " if prob.negated else ""
        return [f"{neg}chosen at random with probability {_val(prob)}"]
    if mode and _val(mode) == "nth" and every:
        try:
            nth = _ordinal(int(_val(every)))
        except ValueError:
            nth = _val(every)
        start = f" starting at packet {_val(packet)}" if packet else ""
        neg = "not " if every.negated else ""
        return [f"{neg}every {nth} packet{start}"]
    return [f"statistic {_opts_text(m.options)}"]


def _iprange(m: Match) -> list[str]:
    out = []
    for o in m.options:
        which = "from" if o.name == "src-range" else "to"
        out.append(f"{which} {'an address outside' if o.negated else 'an address in'} {_val(o)}")
    return out


def _of_type(kind: str) -> Callable[[Match], list[str]]:
    """A describer for a match whose every option selects a `kind` type (`-m icmp --icmp-type`, `-m pkttype`)."""

    def describe(m: Match) -> list[str]:
        return [f"{'not ' if o.negated else ''}of {kind} type {_val(o)}" for o in m.options]

    return describe


_icmp = _of_type("ICMP")
_pkttype = _of_type("link-layer")


_MATCH_DESCRIBERS = {
    "tcp": _port_match,
    "udp": _port_match,
    "sctp": _port_match,
    "dccp": _port_match,
    "udplite": _port_match,
    "multiport": _multiport,
    "owner": _owner,
    "conntrack": _conntrack,
    "state": _conntrack,
    "socket": _socket,
    "addrtype": _addrtype,
    "statistic": _statistic,
    "iprange": _iprange,
    "icmp": _icmp,
    "icmp6": _icmp,
    "pkttype": _pkttype,
}


def _match_phrases(m: Match, rule: Rule) -> list[str]:
    """What one match module requires, in words; unmodelled modules are named as such."""
    if m.module == UNPARSED_MODULE:
        tokens = " ".join(v for o in m.options for v in o.values)
        return [f"unparsed tokens `{tokens}` (the parser could not read them; the simulator does not evaluate them)"]
    if m.module == "comment":
        return []  # appended at the end of the sentence
    if m.module == "mark":
        return _mark(m, "packet mark")
    if m.module == "connmark":
        return _mark(m, "connection mark")
    fn = _MATCH_DESCRIBERS.get(m.module)
    described = fn(m) if fn is not None else []
    problem = _compile_module(m, rule)
    if isinstance(problem, str):
        # the simulator cannot evaluate it: say so, with the match as written
        why = problem
        return [f"with unmodelled match -m {m.module} {_opts_text(m.options)} ({why})".replace("  ", " ")]
    if not described and m.options:
        return [f"with match -m {m.module} {_opts_text(m.options)}"]
    return described


def _subject(rule: Rule) -> str:
    proto = rule.protocol
    if proto is None or proto == "all":
        return "Every packet" if not rule.protocol_negated else "Packets"
    name = _PROTO_NAMES.get(proto, f"protocol {proto}")
    if rule.protocol_negated:
        return f"Every protocol except {name}"
    return name


def conditions(rule: Rule) -> list[str]:
    """The rule's conditions as phrases, in iptables-save order."""
    out: list[str] = []
    if rule.src is not None:
        out.append(_addr(rule.src, "from"))
    if rule.dst is not None:
        out.append(_addr(rule.dst, "to"))
    if rule.in_iface is not None:
        out.append(_iface(rule.in_iface, True))
    if rule.out_iface is not None:
        out.append(_iface(rule.out_iface, False))
    if rule.fragment is not None:
        out.append("that are non-first fragments" if rule.fragment else "that are not non-first fragments")
    for m in rule.matches:
        out.extend(_match_phrases(m, rule))
    return out


def _chain_is_builtin(rule: Rule) -> bool:
    return rule.chain in BUILTIN_CHAINS.get(rule.table, ())


def explain_target(rule: Rule) -> str:
    """What the rule does when it matches."""
    t: Target | None = rule.target
    if t is None:
        return "no target: the rule only counts the packet, which continues with the next rule"
    name = t.name
    opt = t.option
    if t.goto:
        return f"go to chain {name} (no return here: when {name} ends, the calling chain's caller continues)"
    if name == "ACCEPT":
        return f"accept (the packet leaves the {rule.table} table at this hook; later tables still see it)"
    if name == "DROP":
        return "drop the packet"
    if name == "RETURN":
        if _chain_is_builtin(rule):
            return f"return: stop {rule.chain} here and apply its policy"
        return "return to the calling chain"
    if name == "QUEUE":
        return "hand the packet to userspace queue 0 (not simulated)"
    if name == "REJECT":
        how = opt("reject-with")
        return f"reject the packet, answering with {_val(how) if how else 'icmp-port-unreachable'}"
    if name == "REDIRECT":
        ports = opt("to-ports")
        where = f"local {_ports(_val(ports))}" if ports else "this host (same port)"
        rand = " (random port choice)" if opt("random") else ""
        addr = "127.0.0.1 for locally sent packets, else the incoming interface's address"
        return f"redirect to {where} ({addr}){rand}"
    if name == "TPROXY":
        port = opt("on-port")
        ip = opt("on-ip")
        mark = opt("tproxy-mark")
        text = f"transparently hand to port {_val(port) if port else '?'}"
        if ip:
            text += f" on {_val(ip)}"
        if mark:
            text += f" and set mark {_mark_value(_val(mark))}"
        return text
    if name == "MARK":
        for o in t.options:
            v = _val(o)
            if o.name == "set-mark":
                return f"set the packet mark to {_mark_value(v)}"
            if o.name == "set-xmark":
                value, _, mask = v.partition("/")
                if not mask or int(mask, 0) == 0xFFFFFFFF:
                    return f"set the packet mark to {_mark_value(value)}"
                return f"set the packet mark bits {mask} to {value} (xor-mark)"
            if o.name == "and-mark":
                return f"AND the packet mark with {v}"
            if o.name == "or-mark":
                return f"OR the packet mark with {v}"
            if o.name == "xor-mark":
                return f"XOR the packet mark with {v}"
        return f"change the packet mark ({_opts_text(t.options)})"
    if name == "CONNMARK":
        masks = [f"{o.name} {_val(o)}" for o in t.options if o.name in ("nfmask", "ctmask", "mask")]
        mask_text = f" ({', '.join(masks)})" if masks else ""
        if opt("save-mark"):
            return f"save the packet mark into the connection mark{mask_text}"
        if opt("restore-mark"):
            return f"restore the connection mark onto the packet mark{mask_text}"
        for o in t.options:
            if o.name in ("set-mark", "set-xmark"):
                return f"set the connection mark to {_mark_value(_val(o))}{mask_text}"
            if o.name in ("and-mark", "or-mark", "xor-mark"):
                return f"{o.name.split('-')[0].upper()} the connection mark with {_val(o)}"
        return f"change the connection mark ({_opts_text(t.options)})"
    if name == "DNAT":
        to = opt("to-destination")
        return f"rewrite the destination to {_val(to) if to else '?'} (DNAT)"
    if name == "SNAT":
        to = opt("to-source")
        return f"rewrite the source to {_val(to) if to else '?'} (SNAT)"
    if name == "MASQUERADE":
        ports = opt("to-ports")
        extra = f", source {_ports(_val(ports))}" if ports else ""
        return f"rewrite the source to the outgoing interface's address (MASQUERADE){extra}"
    if name == "NETMAP":
        to = opt("to")
        return f"map the address onto {_val(to) if to else '?'} (NETMAP, not simulated)"
    if name in ("LOG", "NFLOG", "ULOG"):
        prefix = opt("log-prefix") or opt("nflog-prefix") or opt("ulog-prefix")
        pre = f' with prefix "{_val(prefix)}"' if prefix else ""
        return f"log the packet ({name}){pre}, then continue with the next rule"
    if name == "TRACE":
        return "trace the packet through netfilter (TRACE), then continue"
    if name == "NOTRACK":
        return "do not track the connection (NOTRACK)"
    if name == "CT":
        if opt("notrack"):
            return "do not track the connection (CT --notrack)"
        return f"attach a conntrack template (CT {_opts_text(t.options)}), then continue"
    if name == "NFQUEUE":
        q = opt("queue-num")
        return f"hand the packet to userspace queue {_val(q) if q else 0} (NFQUEUE, not simulated)"
    if name in _NO_PATH_EFFECT:
        extra = f" {_opts_text(t.options)}" if t.options else ""
        return f"{_NO_PATH_EFFECT[name]} ({name}{extra}; no effect on the path), then continue"
    if name in TARGETS or t.options:
        return f"unmodelled target {name} {_opts_text(t.options)}".rstrip() + " (not simulated)"
    # a user-defined chain
    return f"jump to chain {name} (back here if it returns)"


def explain_rule(rule: Rule) -> str:
    """One readable sentence: "<conditions> -> <action>" (plus the rule's comment)."""
    conds = conditions(rule)
    subject = _subject(rule)
    if conds:
        head = f"{subject} {', '.join(conds)}"
    elif subject == "Every packet":
        head = "Every packet"
    else:
        head = f"Every {subject} packet" if not subject.startswith(("Every", "Packets")) else subject
    text = f"{head} -> {explain_target(rule)}"
    comment = rule.comment()
    if comment:
        text += f' (comment: "{comment}")'
    return text


# --------------------------------------------------------------------------
# Policy routing
# --------------------------------------------------------------------------


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
        sel.append(f"from {_net(rule.src)}")
    if rule.dst is not None:
        sel.append(f"to {_net(rule.dst)}")
    if rule.fwmark is not None:
        mask = f" under mask {rule.fwmask:#x}" if rule.fwmask != 0xFFFFFFFF else ""
        sel.append(f"with fwmark {_num(str(rule.fwmark))}{mask}")
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
    dst = "every destination" if route.dst.prefixlen == 0 else f"{_net(route.dst)}"
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


__all__ = ["conditions", "explain_policy_rule", "explain_route", "explain_rule", "explain_target"]
