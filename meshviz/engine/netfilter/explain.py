"""Plain-language explanations of parsed netfilter rules (routing's are in routing/explain.py).

    explain_rule(rule)          "TCP to any address except 127.0.0.1 -> transparently hand to port 15006 and set mark 1337"

Every match and target the parser knows is described; a match the simulator does not model (`-m set`, `-m limit`,
...) is described generically and says so ("unmodelled match -m set --match-set ..."), it is never dropped.  A
sentence is "conditions -> action": the conditions in iptables-save order (protocol, addresses, interfaces,
fragments, then each match module), the action from the target.
"""

from __future__ import annotations

from collections.abc import Callable

from meshviz.engine.core.wording import net_text, number_text, value_and_mask
from meshviz.engine.netfilter.matches import _compile_module
from meshviz.engine.netfilter.model import (
    BUILTIN_CHAINS,
    AddrCriterion,
    IfaceCriterion,
    Match,
    MatchOption,
    Rule,
    Target,
)
from meshviz.engine.netfilter.spec import TARGETS, UNPARSED_MODULE

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


def _mark_value(text: str) -> str:
    """A mark shown the way the brief's example reads: `1337/0xffffffff` -> `1337`."""
    parsed = value_and_mask(text)
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
    where = net_text(c.network)
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
                out.append(f"whose {what} is not {number_text(_val(o))}")
            else:
                out.append(f"whose {what} is {number_text(_val(o))}")
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
            out.append(f"whose connection's {which} is {neg}{net_text(_val(o))}")
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


__all__ = ["conditions", "explain_rule", "explain_target"]
