"""`ip rule` / `ip -6 rule` output (and transcripts of `ip rule add ...`) into PolicyRules, with line/column errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family, IPNetwork, SourceRef
from meshviz.engine.core.names import PROTOCOL_NAMES, protocol_number
from meshviz.engine.routing.iproute2 import (
    _ERROR_OUTPUT_RE,
    _Bad,
    _Cursor,
    _net,
    _offset_tokens,
    _parse_command,
    _parse_uint,
    _Section,
    _split_prompt,
    _Tok,
    _uint,
    table_id,
)
from meshviz.engine.routing.model import TABLE_IDS, PolicyRule, RuleAction


@dataclass(frozen=True)
class RulesParseResult:
    rules: tuple[PolicyRule, ...]
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()
    #: ("eni-1", 10xxx) for every table name the rules used.
    table_names: tuple[tuple[str, int], ...] = ()
    #: True when the text held `ip rule list` output (a full listing), False
    #: when it only held `ip rule add ...` commands; in the latter case the
    #: kernel's default rules are implied (see routing.with_default_rules).
    has_listing: bool = False


# --------------------------------------------------------------------------
# ip rule
# --------------------------------------------------------------------------

#: `ip rule` shows protocol 0 as `ip`, the others by their names.
_PROTO_NAMES = {**dict(PROTOCOL_NAMES), 0: "ip"}

_DSFIELD_NAMES = {"lowdelay": 0x10, "throughput": 0x08, "reliability": 0x04, "mincost": 0x02}


def _port_range(tok: _Tok, what: str) -> tuple[int, int]:
    lo, sep, hi = tok[0].partition("-")
    a = _parse_uint(lo)
    b = _parse_uint(hi) if sep else a
    if a is None or b is None or a > 65535 or b > 65535 or a > b:
        raise _Bad(tok[1], f"{what}: expected PORT or PORT-PORT, got {tok[0]!r}")
    return a, b


@dataclass
class _RuleDraft:
    priority: int | None = None
    action: RuleAction | None = None
    table: int | None = None
    table_name: str | None = None
    goto: int | None = None
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    fwmark: int | None = None
    fwmask: int = 0xFFFFFFFF
    iif: str | None = None
    oif: str | None = None
    uidrange: tuple[int, int] | None = None
    ipproto: str | None = None
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    tos: int | None = None
    not_: bool = False
    suppress_prefixlength: int | None = None
    family: int | None = None


def _rule_family(draft: _RuleDraft, net: IPNetwork, tok: _Tok) -> None:
    if draft.family is not None and draft.family != net.version:
        raise _Bad(tok[1], f"{tok[0]}: mixes IPv4 and IPv6 in one rule")
    draft.family = net.version


def _parse_rule_tokens(
    cur: _Cursor,
    draft: _RuleDraft,
    *,
    listing: bool,
    table_ids: Mapping[str, int] | None,
    names: dict[str, int],
    warn: list[str],
) -> None:
    while cur.more():
        tok = cur.take()
        key = tok[0]
        if key == "not":
            draft.not_ = True
        elif key == "from":
            val = cur.value(tok)
            net = _net(val, draft.family, strict=not listing)
            if net is not None:
                _rule_family(draft, net, val)
            draft.src = net
        elif key == "to":
            val = cur.value(tok)
            net = _net(val, draft.family, strict=not listing)
            if net is not None:
                _rule_family(draft, net, val)
            draft.dst = net
        elif key in ("tos", "dsfield"):
            val = cur.value(tok)
            tos = _DSFIELD_NAMES.get(val[0])
            draft.tos = tos if tos is not None else _uint(val, key, 0xFF)
        elif key == "fwmark":
            val = cur.value(tok)
            mark_s, slash, mask_s = val[0].partition("/")
            mark = _parse_uint(mark_s)
            mask = _parse_uint(mask_s) if slash else 0xFFFFFFFF
            if mark is None or mask is None or mark > 0xFFFFFFFF or mask > 0xFFFFFFFF:
                raise _Bad(val[1], f"fwmark: expected MARK or MARK/MASK, got {val[0]!r}")
            draft.fwmark, draft.fwmask = mark, mask
        elif key in ("iif", "dev", "oif"):
            val = cur.value(tok)
            nxt = cur.peek()
            if nxt is not None and nxt[0] == "[detached]":
                cur.take()
                warn.append(
                    f"{key} {val[0]} is [detached]: that device did not exist when the rules "
                    "were listed, so the kernel never matches this rule"
                )
            if key == "oif":
                draft.oif = val[0]
            else:
                draft.iif = val[0]
        elif key == "uidrange":
            val = cur.value(tok)
            a, sep, b = val[0].partition("-")
            lo, hi = _parse_uint(a), _parse_uint(b)
            if not sep or lo is None or hi is None or lo > hi:
                raise _Bad(val[1], f"uidrange: expected START-END, got {val[0]!r}")
            draft.uidrange = (lo, hi)
        elif key == "ipproto":
            val = cur.value(tok)
            num = protocol_number(val[0])
            if num is None or num > 255:
                raise _Bad(val[1], f"ipproto: unknown protocol {val[0]!r}")
            draft.ipproto = _PROTO_NAMES.get(num, str(num))
        elif key in ("sport", "dport"):
            val = cur.value(tok)
            rng = _port_range(val, key)
            if key == "sport":
                draft.sport = rng
            else:
                draft.dport = rng
        elif key in ("lookup", "table"):
            val = cur.value(tok)
            if val[0] == "[l3mdev-table]":
                raise _Bad(val[1], "l3mdev (VRF) rules are not simulated")
            draft.action = RuleAction.LOOKUP
            draft.table = table_id(val[0], table_ids)
            if _parse_uint(val[0]) is None:
                draft.table_name = val[0]
                names.setdefault(val[0], draft.table)
        elif key == "goto":
            val = cur.value(tok)
            draft.action = RuleAction.GOTO
            draft.goto = _uint(val, "goto")
            nxt = cur.peek()
            if nxt is not None and nxt[0] == "[unresolved]":
                cur.take()
                warn.append(f"goto {draft.goto} is [unresolved]: no rule has that priority, the kernel skips this rule")
        elif key in ("nop", "blackhole", "unreachable", "prohibit"):
            draft.action = RuleAction(key)
        elif key == "type":
            val = cur.value(tok)
            if val[0] == "unicast":
                draft.action = draft.action or RuleAction.LOOKUP
            elif val[0] in ("blackhole", "unreachable", "prohibit", "nop"):
                draft.action = RuleAction(val[0])
            else:
                raise _Bad(val[1], f"rule type {val[0]!r} is not simulated")
        elif key in ("suppress_prefixlength", "sup_pl"):
            val = cur.value(tok)
            draft.suppress_prefixlength = _uint(val, key, 128)
        elif key in ("priority", "pref", "preference", "order"):
            val = cur.value(tok)
            draft.priority = _uint(val, key)
        elif key in ("proto", "protocol"):
            cur.value(tok)  # who installed the rule: no effect on matching
        elif key in ("realms", "realm", "flowid", "classid"):
            cur.value(tok)  # route classification only
        elif key == "l3mdev":
            raise _Bad(tok[1], "l3mdev (VRF) rules are not simulated")
        elif key in ("suppress_ifgroup", "sup_group"):
            raise _Bad(tok[1], "suppress_ifgroup needs interface groups, which are not simulated")
        elif key in ("tun_id", "dscp", "flowlabel", "nat", "map-to"):
            raise _Bad(tok[1], f"rule selector {key!r} is not simulated")
        else:
            raise _Bad(tok[1], f"unexpected token {key!r} in ip rule")


def _default_pref(existing: list[PolicyRule], family: Family) -> int:
    """fib_default_rule_pref: one below the second rule's priority (0 if none)."""
    prios = sorted(r.priority for r in existing if r.family == family)
    if len(prios) >= 2 and prios[1] > 0:
        return prios[1] - 1
    return 0


def _implied_defaults(family: Family) -> list[PolicyRule]:
    rules = [
        PolicyRule(priority=0, table=255, table_name="local", family=family),
        PolicyRule(priority=32766, table=254, table_name="main", family=family),
    ]
    if family == Family.IPV4:
        rules.append(PolicyRule(priority=32767, table=253, table_name="default", family=family))
    return rules


def _same_rule(a: PolicyRule, b: PolicyRule) -> bool:
    return replace(a, ref=None, priority=0) == replace(b, ref=None, priority=0)


def _lines(
    text: str, source: str, errors: list[ParseError], warnings: list[ParseWarning]
) -> Iterator[tuple[int, str, str, Callable[[int, str], None], Callable[[str], None]]]:
    """Non-blank lines: number, right-stripped line, stripped text, and error/warning reporters bound to them."""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        shown = line.strip()

        def error(column: int, message: str, *, _n: int = lineno, _t: str = shown) -> None:
            errors.append(ParseError(source, _n, column, _t, message))

        def warning(message: str, *, _n: int = lineno, _t: str = shown) -> None:
            warnings.append(ParseWarning(source, _n, _t, message))

        yield lineno, line, shown, error, warning


def parse_ip_rules(
    text: str,
    source: str = "<ip rule>",
    table_ids: Mapping[str, int] | None = None,
    family: Family | None = None,
) -> RulesParseResult:
    """Parse `ip rule list` output and/or `ip rule add ...` commands."""
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    listed: list[PolicyRule] = []
    added: list[PolicyRule] = []
    names: dict[str, int] = {}
    hint = 6 if family == Family.IPV6 else 4 if family == Family.IPV4 else None  # the evidence's own family
    section = _Section(family=hint)
    listing_families: set[Family] = set()

    for lineno, line, shown, error, warning in _lines(text, source, errors, warnings):
        if _ERROR_OUTPUT_RE.match(line):
            if section.kind in (None, "rule"):
                warning("command error output skipped")
            continue
        had_prompt, pchar, rest = _split_prompt(line)
        toks = _offset_tokens(line, rest)
        cmd = _parse_command(toks, rest.strip()) if toks else None
        if had_prompt and not toks:
            continue
        if cmd is None and (had_prompt or toks[0][0] == "sudo"):
            if pchar == "#" or toks[0][0].startswith("#"):
                continue  # a comment
            section = _Section(kind="other", command=rest.strip())
            continue
        if cmd is None and line.lstrip().startswith(("#", ";", "//")):
            continue
        if cmd is not None:
            if cmd.kind == "rule" and cmd.verb == "list":
                section = _Section(kind="rule", family=cmd.family or hint, command=cmd.text)
                continue
            if cmd.kind == "rule" and cmd.verb == "add":
                family_hint = cmd.family
                arg_toks = cmd.args
                section = _Section(kind="rule", family=cmd.family or hint, command=cmd.text)
            elif cmd.kind == "rule":
                error(
                    toks[0][1],
                    f"`ip rule {cmd.verb}` changes rules in a way that is not replayed; "
                    "paste the `ip rule list` output instead",
                )
                continue
            else:
                kind = "route_get" if cmd.kind == "route" and cmd.verb == "get" else cmd.kind
                section = _Section(kind=kind, family=cmd.family or hint, command=cmd.text)
                continue
        else:
            if section.kind in ("route", "route_get"):
                continue  # another parser's input
            if section.kind == "other":
                if not section.warned:
                    warning(f"output of `{section.command}` is not ip rule output; skipped")
                    section.warned = True
                continue
            family_hint = section.family
            arg_toks = toks

        # A rule: either `PRIO:\t...` (listing) or the `ip rule add` argument form.
        listing = False
        draft = _RuleDraft(family=None)
        if arg_toks and re.fullmatch(r"\d+:", arg_toks[0][0]) and cmd is None:
            listing = True
            draft.priority = int(arg_toks[0][0][:-1])
            arg_toks = arg_toks[1:]
        elif arg_toks and re.fullmatch(r"\d+:\S+", arg_toks[0][0]) and cmd is None:
            # `0:from all lookup local` (no space after the colon)
            t, c = arg_toks[0]
            prio, _, first = t.partition(":")
            listing = True
            draft.priority = int(prio)
            arg_toks = [(first, c + len(prio) + 1), *arg_toks[1:]]
        rule_warnings: list[str] = []
        cur = _Cursor(arg_toks, len(line))
        try:
            if listing and not arg_toks:
                raise _Bad(len(line) + 1, "rule has no selector and no action")
            _parse_rule_tokens(cur, draft, listing=listing, table_ids=table_ids, names=names, warn=rule_warnings)
            if draft.action is None:
                if listing:
                    raise _Bad(len(line) + 1, "rule has no action (lookup/goto/nop/blackhole...)")
                # `ip rule add from X` defaults to `lookup main`, as iproute2 does.
                draft.action = RuleAction.LOOKUP
                draft.table = TABLE_IDS["main"]
                draft.table_name = "main"
            if (
                draft.action == RuleAction.GOTO
                and draft.priority is not None
                and draft.goto is not None
                and draft.goto <= draft.priority
            ):
                raise _Bad(
                    arg_toks[0][1] if arg_toks else 1,
                    f"goto {draft.goto} does not point past the rule's own priority "
                    f"{draft.priority} (the kernel refuses it)",
                )
        except _Bad as bad:
            error(bad.column, bad.message)
            continue
        fam_num = draft.family or family_hint or 4
        family = Family.IPV6 if fam_num == 6 else Family.IPV4
        if draft.table_name is None and draft.table is not None:
            for n, tid in TABLE_IDS.items():
                if tid == draft.table:
                    draft.table_name = n
        for msg in rule_warnings:
            warning(msg)
        ref = SourceRef(source, lineno, shown)
        if draft.priority is None:
            pool = listed + added if family in listing_families else added + _implied_defaults(family)
            assigned = _default_pref([r for r in pool if r.family == family], family)
            warning(f"no priority given: the kernel assigns {assigned} (one below the second rule's priority)")
            draft.priority = assigned
            explicit_prio = False
        else:
            explicit_prio = True
        rule = PolicyRule(
            priority=draft.priority if draft.priority is not None else 0,
            action=draft.action,
            table=draft.table if draft.action == RuleAction.LOOKUP else None,
            table_name=draft.table_name if draft.action == RuleAction.LOOKUP else None,
            goto=draft.goto,
            src=draft.src,
            dst=draft.dst,
            fwmark=draft.fwmark,
            fwmask=draft.fwmask if draft.fwmark is not None else 0xFFFFFFFF,
            iif=draft.iif,
            oif=draft.oif,
            uidrange=draft.uidrange,
            ipproto=draft.ipproto,
            sport=draft.sport,
            dport=draft.dport,
            tos=draft.tos,
            not_=draft.not_,
            suppress_prefixlength=draft.suppress_prefixlength,
            family=family,
            ref=ref,
        )
        if listing:
            listed.append(rule)
            listing_families.add(family)
        else:
            pool = listed + added
            dup = next(
                (
                    r
                    for r in pool
                    if r.family == family and _same_rule(r, rule) and (not explicit_prio or r.priority == rule.priority)
                ),
                None,
            )
            if dup is not None:
                warning(
                    f"the same rule already exists at priority {dup.priority}: "
                    "the kernel answers `File exists` and adds nothing"
                )
                continue
            added.append(rule)

    rules = sorted(listed + added, key=lambda r: (r.family != Family.IPV4, r.priority))
    return RulesParseResult(
        rules=tuple(rules),
        errors=tuple(errors),
        warnings=tuple(warnings),
        table_names=tuple(names.items()),
        has_listing=bool(listing_families),
    )
