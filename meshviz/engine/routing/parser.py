"""Parsers for `ip rule` and `ip route` text.

Both parsers accept what people paste: the output of `ip rule list` /
`ip route show table all` (with or without the transcript's prompt lines
such as `$ ip rule` or `# ip route show table eni-1`), and the argument form
of the commands they ran (`ip rule add fwmark 1337 lookup 133`,
`sudo ip route add local default dev lo table 133`, or just
`fwmark 1337 lookup 133 pref 32765`).

A transcript may mix both commands: `parse_ip_rules` skips the output of
`ip route ...` prompts and `parse_ip_routes` skips the output of
`ip rule ...` prompts, so the same text can be handed to both.

Nothing is guessed silently: a token that is not understood is a
`ParseError` carrying its 1-based column; input that is understood but
deserves attention (a rule bound to a missing device, a route attribute
that is skipped) is a `ParseWarning`.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family, IPAddress, IPNetwork, SourceRef
from meshviz.engine.core.names import PROTOCOL_NAMES, protocol_number
from meshviz.engine.routing.model import TABLE_IDS, PolicyRule, Route, RouteType, RuleAction

__all__ = [
    "CUSTOM_TABLE_ID_BASE",
    "RoutesParseResult",
    "RulesParseResult",
    "parse_ip_routes",
    "parse_ip_rules",
    "table_id",
    "table_label",
]

#: Table names that are not numbers and not in TABLE_IDS get a stable id at or above this.
CUSTOM_TABLE_ID_BASE = 10000


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


@dataclass(frozen=True)
class RoutesParseResult:
    routes: tuple[Route, ...]
    table_names: tuple[tuple[str, int], ...] = ()
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()


# --------------------------------------------------------------------------
# Table names
# --------------------------------------------------------------------------


def table_id(name: str, table_ids: Mapping[str, int] | None = None) -> int:
    """The numeric id of a routing table as `ip` prints or accepts it.

    Numbers are themselves; `local`/`main`/`default`/`unspec` are the kernel's
    ids; any other name (e.g. `eni-1`, which came from the user's
    /etc/iproute2/rt_tables) gets a stable id >= 10000 derived from the name,
    so the rule parser and the route parser agree without sharing state.
    `table_ids` can supply the real rt_tables mapping.
    """
    if table_ids is not None and name in table_ids:
        return table_ids[name]
    if name in TABLE_IDS:
        return TABLE_IDS[name]
    value = _parse_uint(name)
    if value is not None:
        return value
    return CUSTOM_TABLE_ID_BASE + zlib.crc32(name.encode()) % 1_000_000_000


def table_label(table: int, names: tuple[tuple[str, int], ...] = ()) -> str:
    """`local`/`main`/`eni-1`/`133` for a table id."""
    for name, tid in names:
        if tid == table:
            return name
    for name, tid in TABLE_IDS.items():
        if tid == table:
            return name
    return str(table)


# --------------------------------------------------------------------------
# Small token helpers
# --------------------------------------------------------------------------

_Tok = tuple[str, int]  # text, 1-based column


class _Bad(Exception):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _tokens(line: str) -> list[_Tok]:
    return [(m.group(), m.start() + 1) for m in re.finditer(r"\S+", line)]


def _parse_uint(text: str) -> int | None:
    """strtoul(text, 0) as iproute2 uses it: 0x.. hex, 0.. octal, else decimal."""
    t = text.lower()
    try:
        if t.startswith("0x"):
            return int(t[2:], 16)
        if len(t) > 1 and t.startswith("0"):
            return int(t[1:], 8)
        if t.isdigit():
            return int(t)
    except ValueError:
        return None
    return None


def _uint(tok: _Tok, what: str, maximum: int = 0xFFFFFFFF) -> int:
    value = _parse_uint(tok[0])
    if value is None or value > maximum:
        raise _Bad(tok[1], f"{what}: expected a number, got {tok[0]!r}")
    return value


class _Cursor:
    def __init__(self, toks: list[_Tok], line_len: int) -> None:
        self.toks = toks
        self.i = 0
        self.end_col = line_len + 1

    def more(self) -> bool:
        return self.i < len(self.toks)

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def value(self, keyword: _Tok) -> _Tok:
        if self.i >= len(self.toks):
            raise _Bad(self.end_col, f"{keyword[0]!r} needs a value")
        return self.take()


def _net(tok: _Tok, family_hint: int | None, *, strict: bool) -> IPNetwork | None:
    """`all`/`default`/`any` -> None (the whole family); else a network."""
    text = tok[0]
    if text in ("all", "default", "any"):
        return None
    try:
        if "/" in text:
            addr, _, plen = text.partition("/")
            if not plen.isdigit():
                raise ValueError(text)
            return ipaddress.ip_network(f"{addr}/{int(plen)}", strict=strict)
        return ipaddress.ip_network(text)
    except ValueError as exc:
        if strict and "host bits set" in str(exc):
            raise _Bad(tok[1], f"{text}: host bits set for that prefix length") from None
        raise _Bad(tok[1], f"not an address or prefix: {text!r}") from None


def _addr(tok: _Tok) -> IPAddress:
    try:
        return ipaddress.ip_address(tok[0])
    except ValueError:
        raise _Bad(tok[1], f"not an IP address: {tok[0]!r}") from None


def _whole(family: int) -> IPNetwork:
    return ipaddress.ip_network("::/0" if family == 6 else "0.0.0.0/0")


# --------------------------------------------------------------------------
# Transcript structure: prompts and commands
# --------------------------------------------------------------------------

_PROMPT_RE = re.compile(r"^\s*(?:[\w.-]+@[\w.-]+(?::\S*?)?\s*)?([$#%>])(?=\s|$)\s*")
_ERROR_OUTPUT_RE = re.compile(
    r"^\s*(RTNETLINK answers:|Error:|Cannot find device|Command line is not complete|"
    r"Object \"|Usage:|Dump terminated|sysctl:)"
)

# `ip` options that take an argument.
_IP_OPTS_WITH_ARG = {"-f", "-family", "-n", "-netns", "-l", "-loops", "-rc", "-rcvbuf", "-b", "-batch"}

_RULE_VERBS = ("add", "delete", "flush", "list", "lst", "show", "save", "restore", "help")
_ROUTE_VERBS = (
    "add",
    "change",
    "chg",
    "replace",
    "prepend",
    "append",
    "test",
    "delete",
    "list",
    "lst",
    "show",
    "get",
    "flush",
    "save",
    "restore",
    "showdump",
    "help",
)
_ADD_VERBS = {"add", "change", "chg", "replace", "prepend", "append", "test"}


@dataclass
class _Command:
    kind: str  # "rule" | "route" | "other"
    verb: str  # "list", "add", "get", ... ("" for other)
    family: int | None
    args: list[_Tok]
    text: str


def _verb(tok: str, verbs: tuple[str, ...]) -> str | None:
    for v in verbs:
        if v.startswith(tok):
            return v
    return None


def _parse_command(toks: list[_Tok], text: str) -> _Command | None:
    """Recognise `[sudo] ... ip [opts] rule|route VERB args`; None if no `ip` at all."""
    ip_positions = [i for i, (t, _) in enumerate(toks) if t == "ip" or t.endswith("/ip")]
    if not ip_positions:
        # `rule add ...` pasted without its leading `ip`
        first = 1 if toks and toks[0][0] == "sudo" else 0
        if len(toks) > first + 1 and toks[first][0] == "rule" and _verb(toks[first + 1][0], _RULE_VERBS):
            return _parse_command([("ip", toks[first][1]), *toks[first:]], text)
        return None
    best: _Command | None = None
    verbs: tuple[str, ...]
    for pos in ip_positions:
        i = pos + 1
        family: int | None = None
        while i < len(toks) and toks[i][0].startswith("-"):
            opt = toks[i][0]
            if opt in ("-4",):
                family = 4
            elif opt in ("-6",):
                family = 6
            if opt in _IP_OPTS_WITH_ARG and i + 1 < len(toks):
                if opt in ("-f", "-family"):
                    fam = toks[i + 1][0]
                    family = 6 if fam in ("inet6", "6") else 4 if fam in ("inet", "4") else family
                i += 1
            i += 1
        if i >= len(toks):
            continue
        obj = toks[i][0]
        rest = toks[i + 1 :]
        if "route".startswith(obj):
            kind, verbs = "route", _ROUTE_VERBS
        elif "rule".startswith(obj) and len(obj) >= 2:
            kind, verbs = "rule", _RULE_VERBS
        else:
            best = best or _Command("other", "", family, [], text)
            continue
        verb = "list"
        if rest:
            found = _verb(rest[0][0], verbs)
            if found is not None:
                verb = found
                rest = rest[1:]
            elif kind == "rule":
                verb = "add"  # `ip rule from 1.2.3.4 ...` is not valid ip syntax; treat as args
        if verb in ("lst", "show"):
            verb = "list"
        best = _Command(kind, verb, family, rest, text)
    return best


@dataclass
class _Section:
    kind: str | None = None  # None (no prompt yet), "rule", "route", "route_get", "other"
    family: int | None = None
    table: int | None = None
    table_name: str | None = None
    dev: str | None = None
    proto: str | None = None
    scope: str | None = None
    command: str = ""
    warned: bool = False


def _split_prompt(line: str) -> tuple[bool, str, str]:
    """(had_prompt, prompt_char, rest)."""
    m = _PROMPT_RE.match(line)
    if m is None:
        return False, "", line
    return True, m.group(1), line[m.end() :]


def _offset_tokens(line: str, rest: str) -> list[_Tok]:
    base = len(line) - len(rest)
    return [(t, c + base) for t, c in _tokens(rest)]


# --------------------------------------------------------------------------
# ip rule
# --------------------------------------------------------------------------

_PROTO_NAMES = dict(PROTOCOL_NAMES)
_PROTO_NAMES[0] = "ip"

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
