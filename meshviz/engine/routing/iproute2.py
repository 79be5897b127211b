"""What the `ip rule` and `ip route` parsers share: table names and ids, tokens, and the structure of a pasted
transcript (prompts, `ip` commands, their output sections).
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from meshviz.engine.core.model import IPAddress, IPNetwork
from meshviz.engine.routing.model import TABLE_IDS

#: Table names that are not numbers and not in TABLE_IDS get a stable id at or above this.
CUSTOM_TABLE_ID_BASE = 10000


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
