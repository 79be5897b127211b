"""Plain-language explanations of nft rules, for the explorer's rule table (iptables' are netfilter/explain.py).

    explain_nft_rule(rule)   "TCP destination port 15008 -> return to the calling chain"

A sentence is "conditions -> action": every match in the rule's order, then its effects and verdict.  Selectors
the explorer knows get a name (`ip daddr` "destination address", `meta skuid` "socket owner uid", ...); any other
is shown as written.  What the simulator does not model (`limit`, `numgen inc`, `queue`, `reject`, iptables-nft's
`xt` ...) is named as such with its reason, never dropped.  `tproxy` says it is not a verdict (without a
transparent socket the rule ends and the chain goes on), as the evaluator models it.
"""

from __future__ import annotations

from meshviz.engine.nftables.model import (
    AnonSet,
    Binop,
    Counter,
    FlagList,
    Match,
    Nat,
    NftRule,
    SetRef,
    SetStmt,
    Simple,
    Statement,
    Tproxy,
    Unmodelled,
    Verdict,
    Vmap,
)

_SELECTORS = {
    "meta l4proto": "protocol",
    "meta nfproto": "address family",
    "meta iifname": "arriving on",
    "meta oifname": "leaving by",
    "iifname": "arriving on",
    "oifname": "leaving by",
    "meta mark": "mark",
    "meta skuid": "socket owner uid",
    "meta skgid": "socket owner gid",
    "ip saddr": "source address",
    "ip daddr": "destination address",
    "ip6 saddr": "source address",
    "ip6 daddr": "destination address",
    "ip protocol": "protocol",
    "ip6 nexthdr": "protocol",
    "tcp dport": "TCP destination port",
    "tcp sport": "TCP source port",
    "udp dport": "UDP destination port",
    "udp sport": "UDP source port",
    "th dport": "destination port",
    "th sport": "source port",
    "tcp flags": "TCP flags",
    "ct state": "conntrack state",
    "ct mark": "connection mark",
    "ct zone": "conntrack zone",
    "ct direction": "conntrack direction",
    "socket transparent": "a transparent socket",
}
_OPS = {"!=": "not ", "<": "below ", ">": "above ", "<=": "at most ", ">=": "at least "}
_VERDICTS = {
    "accept": "accept (in this base chain; later chains on the hook still run)",
    "drop": "drop",
    "return": "return to the calling chain",
    "continue": "continue",
    "queue": "queue to user space (not modelled)",
}


def _expr(e: object) -> str:
    text = e.text() if hasattr(e, "text") else str(e)
    if isinstance(e, Binop):
        return f"{_SELECTORS.get(e.left.text(), e.left.text())} {e.op} {e.right.text()}"
    return _SELECTORS.get(text, text)


def _match(m: Match) -> str:
    left = _expr(m.left)
    if isinstance(m.right, SetRef):
        right = f"in set @{m.right.name}" if m.op == "==" else f"not in set @{m.right.name}"
        return f"{left} {right}"
    if isinstance(m.right, AnonSet):
        inside = ", ".join(el.text() for el in m.right.elements)
        return f"{left} {'not ' if m.op == '!=' else ''}one of {{{inside}}}"
    if isinstance(m.right, FlagList):
        return f"{left} {'not ' if m.op == '!=' else ''}any of {m.right.text()}"
    return f"{left} {_OPS.get(m.op, '')}{m.right.text()}"


def _effect(s: Statement) -> str | None:
    if isinstance(s, Verdict):
        if s.kind in ("jump", "goto"):
            return f"{s.kind} to chain {s.chain}" + (" (no return here)" if s.kind == "goto" else "")
        return _VERDICTS.get(s.kind, s.kind)
    if isinstance(s, Counter):
        return None
    if isinstance(s, SetStmt):
        return f"set {_expr(s.target)} to {_expr(s.value)}"
    if isinstance(s, Nat):
        to = (s.addr or "") + (f":{s.port}" if s.port is not None else "")
        if s.kind == "redirect":
            return f"redirect to local port {s.port}" if s.port is not None else "redirect to this host"
        if s.kind == "masquerade":
            return "masquerade (source NAT to the outgoing interface's address)"
        return f"{'destination' if s.kind == 'dnat' else 'source'} NAT to {to}"
    if isinstance(s, Tproxy):
        to = (s.addr or "") + (f":{s.port}" if s.port is not None else "")
        return f"hand to the transparent socket on {to} (not a verdict: without one the chain goes on)"
    if isinstance(s, Vmap):
        where = f"map @{s.map.name}" if isinstance(s.map, SetRef) else f"the verdicts {s.map.text()}"
        return f"look {_expr(s.key)} up in {where} and take its verdict"
    if isinstance(s, Simple):
        return {"notrack": "skip connection tracking", "log": "log it"}.get(s.kind, s.text())
    if isinstance(s, Unmodelled):
        return f"unmodelled {s.text()} ({s.why})"
    return s.text()


def explain_nft_rule(rule: NftRule) -> str:
    """One sentence: "conditions -> action" (every packet when the rule has no match)."""
    conditions = [_match(s) for s in rule.statements if isinstance(s, Match)]
    effects = [e for s in rule.statements if not isinstance(s, Match) and (e := _effect(s)) is not None]
    sentence = f"{' and '.join(conditions) or 'every packet'} -> {', then '.join(effects) or 'count it (no effect)'}"
    if rule.comment:
        sentence += f' "{rule.comment}"'
    return sentence


def verdict_target(rule: NftRule) -> str:
    """What the rule leads to, for the rule table's target filter: the chain of a jump/goto, the verdict, the NAT or
    tproxy statement, `vmap`; "" when it only matches or counts."""
    out = ""
    for s in rule.statements:
        if isinstance(s, Verdict):
            out = s.chain if s.kind in ("jump", "goto") and s.chain else s.kind
        elif isinstance(s, Nat):
            out = s.kind
        elif isinstance(s, Tproxy):
            out = "tproxy"
        elif isinstance(s, Vmap):
            out = "vmap"
    return out
