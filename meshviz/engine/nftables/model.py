"""The typed model of an nftables ruleset (`nft list ruleset`, `nft -j list ruleset`, `nft -f` scripts).

Frozen dataclasses, as the iptables model: a ruleset holds tables (family `ip`, `ip6`, `inet`, ...), a table
holds chains (base chains with `type`/`hook`/`priority`/`policy`, regular chains) and named sets and maps, a
chain holds rules, and a rule is a list of statements evaluated left to right: relational matches
(`Match`: an expression, an operator and a right-hand side) and statements with effects (verdicts, `counter`,
`meta mark set`, `redirect`, `tproxy`, ...).  Values stay as written (`Value`); what they mean depends on the
expression they are compared with, which the evaluator (`nftables/evaluate.py`) knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar, overload

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import SourceRef

# Standard priority names of the ip, ip6 and inet families (nft(8), "CHAINS").
PRIORITY_NAMES: dict[str, int] = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}

#: The address families of tables.
FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """A packet, meta, conntrack, fib or socket field: `meta l4proto`, `ip saddr`, `tcp dport`, `ct state`,
    `fib daddr . iif type`, `socket transparent`; `key` is the canonical spelling (`meta mark` for `mark`)."""

    key: str

    def text(self) -> str:
        return self.key


@dataclass(frozen=True)
class Binop:
    """`EXPR & 0xfff`, `EXPR | 0x4000`, `EXPR ^ 0x4000` (`and`/`or`/`xor` are the same operators)."""

    left: Expr
    op: str  # & | ^ << >>
    right: Value

    def text(self) -> str:
        return f"{self.left.text()} {self.op} {self.right.text()}"


@dataclass(frozen=True)
class Concat:
    """`ip daddr . meta l4proto . th dport`: a concatenation (looked up in a set or map)."""

    parts: tuple[Expr, ...]

    def text(self) -> str:
        return " . ".join(p.text() for p in self.parts)


@dataclass(frozen=True)
class Value:
    """A constant as written: `tcp`, `10.0.0.0/8`, `80-90`, `0x4000`, `"lo"` (quotes removed), `:15001`."""

    text_: str

    def text(self) -> str:
        return self.text_


Expr = Selector | Binop | Concat | Value


@dataclass(frozen=True)
class Element:
    """One element of a set or map: its key (one value per concatenated part) and, in a map, its data."""

    key: tuple[Value, ...]
    data: Value | Verdict | None = None

    def text(self) -> str:
        k = " . ".join(v.text() for v in self.key)
        return k if self.data is None else f"{k} : {self.data.text()}"


@dataclass(frozen=True)
class AnonSet:
    """`{ 53, 15008 }` written in the rule."""

    elements: tuple[Element, ...]

    def text(self) -> str:
        return "{ " + ", ".join(e.text() for e in self.elements) + " }"


@dataclass(frozen=True)
class SetRef:
    """`@name`: a named set or map of the rule's table."""

    name: str

    def text(self) -> str:
        return f"@{self.name}"


@dataclass(frozen=True)
class FlagList:
    """`established,related`: any of these flags (a bitmask match)."""

    flags: tuple[str, ...]

    def text(self) -> str:
        return ",".join(self.flags)


Right = Value | AnonSet | SetRef | FlagList


# --------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A relational expression: `tcp dport != { 53, 15008 }`, `meta mark & 0xfff == 0x111`."""

    left: Expr
    op: str  # == != < > <= >= (implicit == is written as "==")
    right: Right
    explicit_op: bool = False

    def text(self) -> str:
        op = f" {self.op}" if self.explicit_op or self.op != "==" else ""
        return f"{self.left.text()}{op} {self.right.text()}"


@dataclass(frozen=True)
class Verdict:
    kind: str  # accept drop return continue jump goto queue
    chain: str | None = None

    def text(self) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind


@dataclass(frozen=True)
class Counter:
    packets: int = 0
    bytes: int = 0

    def text(self) -> str:
        return "counter"


@dataclass(frozen=True)
class SetStmt:
    """`meta mark set EXPR`, `ct mark set EXPR`, `ct zone set N`."""

    target: Selector
    value: Expr

    def text(self) -> str:
        return f"{self.target.text()} set {self.value.text()}"


@dataclass(frozen=True)
class Nat:
    """`redirect [to :PORT]`, `dnat [ip|ip6] to ADDR[:PORT]`, `snat ...`, `masquerade [to :PORT]`."""

    kind: str  # redirect dnat snat masquerade
    family: str | None = None
    addr: str | None = None
    port: int | None = None
    flags: tuple[str, ...] = ()

    def text(self) -> str:
        parts = [self.kind]
        if self.family:
            parts.append(self.family)
        if self.addr is not None or self.port is not None:
            a = self.addr or ""
            if a and ":" in a and self.port is not None:
                a = f"[{a}]"
            parts.append("to " + a + (f":{self.port}" if self.port is not None else ""))
        parts += self.flags
        return " ".join(parts)


@dataclass(frozen=True)
class Tproxy:
    """`tproxy [ip|ip6] to [ADDR]:PORT`: assign the packet to a transparent socket (not a verdict)."""

    family: str | None = None
    addr: str | None = None
    port: int | None = None

    def text(self) -> str:
        fam = f" {self.family}" if self.family else ""
        a = self.addr or ""
        if a and ":" in a:
            a = f"[{a}]"
        return f"tproxy{fam} to {a}" + (f":{self.port}" if self.port is not None else "")


@dataclass(frozen=True)
class Vmap:
    """`EXPR vmap { KEY : VERDICT, ... }` or `EXPR vmap @name`."""

    key: Expr
    map: AnonSet | SetRef

    def text(self) -> str:
        return f"{self.key.text()} vmap {self.map.text()}"


@dataclass(frozen=True)
class Simple:
    """A statement without a path effect worth modelling beyond its name: `notrack`, `log ...`, `comment`."""

    kind: str  # notrack log comment
    args: str = ""

    def text(self) -> str:
        return f"{self.kind} {self.args}".strip()


@dataclass(frozen=True)
class Unmodelled:
    """A statement or expression the simulator does not model (`limit rate ...`, `numgen ...`, `queue`,
    `reject`): kept with its text, so that reaching it is a named UNSUPPORTED step."""

    text_: str
    why: str

    def text(self) -> str:
        return self.text_


Statement = Match | Verdict | Counter | SetStmt | Nat | Tproxy | Vmap | Simple | Unmodelled


# --------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------

T = TypeVar("T")


class Later(Generic[T]):
    """A tuple built on first use: the listing parser (`nftables/listing.py`) gives a chain its rules, a set its
    elements, this way.  The text was checked when it was parsed (its errors are the parse's), so building reads
    text already known to be good; `size` and `unmodelled` (how many rules, how many `Unmodelled` statements
    among them) are known before, when the parser knows them."""

    __slots__ = ("build", "size", "unmodelled")

    def __init__(
        self, build: Callable[[], tuple[T, ...]], size: int | None = None, unmodelled: int | None = None
    ) -> None:
        self.build = build
        self.size = size
        self.unmodelled = unmodelled


class _LaterTuple(Generic[T]):
    """A dataclass field holding a tuple or a `Later` for one: reading it builds the tuple once and keeps it, so
    equality, hashing, `repr` and `dataclasses.replace` see the tuple as if it had always been there."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_"

    @overload
    def __get__(self, obj: None, owner: Any) -> tuple[T, ...]: ...

    @overload
    def __get__(self, obj: object, owner: Any) -> tuple[T, ...]: ...

    def __get__(self, obj: object | None, owner: Any = None) -> tuple[T, ...]:
        if obj is None:
            return ()  # the field's default
        v = obj.__dict__[self.slot]
        if isinstance(v, Later):
            v = v.build()
            obj.__dict__[self.slot] = v
        return v  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: tuple[T, ...] | Later[T]) -> None:
        obj.__dict__[self.slot] = value

    def pending(self, obj: object) -> Later[T] | None:
        """The `Later` not built yet, or None."""
        v = obj.__dict__[self.slot]
        return v if isinstance(v, Later) else None


@dataclass(frozen=True)
class NftRule:
    family: str
    table: str
    chain: str
    statements: tuple[Statement, ...]
    handle: int | None = None
    comment: str | None = None
    ref: SourceRef | None = None

    def text(self) -> str:
        """The rule's statements in `nft list ruleset` form (without counter values and handle)."""
        return " ".join(s.text() for s in self.statements)


@dataclass(frozen=True)
class NftSet:
    """A named set (`set NAME { type ...; elements = { ... } }`) or map (`map NAME { type K : V; ... }`)."""

    name: str
    key_type: str
    data_type: str | None = None  # maps: `verdict`, `ipv4_addr`, ...
    flags: tuple[str, ...] = ()
    elements: _LaterTuple[Element] = _LaterTuple()
    ref: SourceRef | None = None

    @property
    def is_map(self) -> bool:
        return self.data_type is not None


@dataclass(frozen=True)
class NftChain:
    name: str
    rules: _LaterTuple[NftRule] = _LaterTuple()
    type: str | None = None  # filter nat route (base chains)
    hook: str | None = None  # prerouting input forward output postrouting ingress egress
    priority: int | None = None
    policy: str | None = None  # accept drop (base chains)
    device: str | None = None
    handle: int | None = None
    ref: SourceRef | None = None

    @property
    def base(self) -> bool:
        return self.hook is not None

    def pending_rules(self) -> Later[NftRule] | None:
        """The rules still to be built (a listing's chain not read yet), or None."""
        v = self.__dict__["_rules_"]  # _LaterTuple's slot, read directly: the summary asks for every chain
        return v if isinstance(v, Later) else None

    def may_contain(self, *words: str) -> bool:
        """False when the chain's rules are not built yet and their listing text holds none of `words` (so no rule
        of it has a statement spelled with them, e.g. `tproxy`); True otherwise - the rules must be read."""
        later = self.pending_rules()
        if later is None:
            return True
        body = getattr(later.build, "text", None)
        if not isinstance(body, str):
            return True
        start, end = getattr(later.build, "start", 0), getattr(later.build, "end", len(body))
        return any(body.find(w, start, end) >= 0 for w in words)

    def rule_count(self) -> int:
        """len(self.rules), without building rules the parser already counted."""
        later = self.pending_rules()
        return later.size if later is not None and later.size is not None else len(self.rules)

    def unmodelled_count(self) -> int:
        """How many statements of the chain's rules are `Unmodelled`, without building rules the parser already
        counted them in."""
        later = self.pending_rules()
        if later is not None and later.unmodelled is not None:
            return later.unmodelled
        return sum(1 for r in self.rules for s in r.statements if isinstance(s, Unmodelled))


class ChainIndex:
    """A table's chains before they are built (the listing parser's, `nftables/parser.py`): called, it gives
    them all, in order; until then it answers counts and lookups by name building only what is asked for.  A
    chain it gives is built once: the tuple holds the same chain a lookup gave before."""

    def __call__(self) -> tuple[NftChain, ...]:
        raise NotImplementedError

    def chain(self, name: str) -> NftChain | None:
        raise NotImplementedError

    def base_chains(self) -> tuple[NftChain, ...]:
        raise NotImplementedError

    def chain_count(self) -> int:
        raise NotImplementedError

    def rule_count(self) -> int:
        raise NotImplementedError

    def unmodelled_count(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class NftTable:
    family: str
    name: str
    chains: _LaterTuple[NftChain] = _LaterTuple()  # a tuple, or a `Later` whose build is a `ChainIndex`
    sets: tuple[NftSet, ...] = ()
    handle: int | None = None
    ref: SourceRef | None = None

    def pending_chains(self) -> ChainIndex | None:
        """The chains still to be built (a listing's table whose chains were not read yet), or None."""
        v = self.__dict__["_chains_"]
        return v.build if isinstance(v, Later) and isinstance(v.build, ChainIndex) else None

    def chain(self, name: str) -> NftChain | None:
        index = self.pending_chains()
        if index is not None:
            return index.chain(name)
        return self._chains_by_name.get(name)

    def base_chains(self) -> tuple[NftChain, ...]:
        """The base chains, in order, without building the others."""
        index = self.pending_chains()
        return index.base_chains() if index is not None else tuple(c for c in self.chains if c.base)

    def chain_count(self) -> int:
        """len(self.chains), without building them."""
        index = self.pending_chains()
        return index.chain_count() if index is not None else len(self.chains)

    def rule_count(self) -> int:
        """The number of rules of all chains, without building chains or rules the parser counted."""
        index = self.pending_chains()
        return index.rule_count() if index is not None else sum(c.rule_count() for c in self.chains)

    def unmodelled_count(self) -> int:
        """How many statements of the table's rules are `Unmodelled`, without building what the parser counted."""
        index = self.pending_chains()
        return index.unmodelled_count() if index is not None else sum(c.unmodelled_count() for c in self.chains)

    def set(self, name: str) -> NftSet | None:
        return self._sets_by_name.get(name)

    @cached_property
    def _chains_by_name(self) -> dict[str, NftChain]:
        return {c.name: c for c in self.chains}

    @cached_property
    def _sets_by_name(self) -> dict[str, NftSet]:  # apart from the chains: a lookup of a set builds no chain
        return {s.name: s for s in self.sets}

    @property
    def label(self) -> str:
        return f"{self.family} {self.name}"


@dataclass(frozen=True)
class NftRuleset:
    tables: tuple[NftTable, ...] = ()
    source: str = "<nftables>"

    def table(self, family: str, name: str) -> NftTable | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)

    def rule_count(self) -> int:
        return sum(t.rule_count() for t in self.tables)

    def unmodelled_count(self) -> int:
        return sum(t.unmodelled_count() for t in self.tables)

    def rules(self) -> tuple[NftRule, ...]:
        return tuple(r for t in self.tables for c in t.chains for r in c.rules)


def parse_priority(text: str) -> int:
    """`-100`, `dstnat`, `mangle - 5`, `filter+10` -> the number."""
    t = text.replace(" ", "")
    for name, base in PRIORITY_NAMES.items():
        if t.startswith(name):
            rest = t[len(name) :]
            return base + (int(rest) if rest else 0)
    return int(t)


@dataclass(frozen=True)
class NftParseResult:
    ruleset: NftRuleset
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]
    format: str  # "list" (nft list ruleset / block syntax), "script" (nft -f commands), "json"

    @property
    def ok(self) -> bool:
        return not self.errors
