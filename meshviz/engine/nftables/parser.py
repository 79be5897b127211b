"""Parse nftables evidence: `nft list ruleset` (with or without counters, handles shown by `-a`), `nft -f`
scripts (`add table/chain/rule/set/map/element`, `insert rule ... index N`, `flush`, `delete`, and the block
syntax `table inet t { chain c { ... } }`), and `nft -j list ruleset` JSON (`nftables/json_parser.py`).

Errors are data: `ParseError(source, line, column, text, message)` for a line that cannot be understood; the
rest of the input is still read.  A statement the simulator does not model is kept as `Unmodelled` (its text
and why), so that a packet reaching it is a named UNSUPPORTED step, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace
from functools import partial

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import SourceRef
from meshviz.engine.nftables.lexer import LexError, Token, tokenize
from meshviz.engine.nftables.listing import (
    GOTO_TARGETS,
    HANDLES,
    JUMP_TARGETS,
    SET_REFS,
    Chain,
    ChainRecords,
    NotAListing,
    Set,
    Table,
    scan,
)
from meshviz.engine.nftables.model import (
    FAMILIES,
    AnonSet,
    Binop,
    ChainIndex,
    Concat,
    Counter,
    Element,
    Expr,
    FlagList,
    Later,
    Match,
    Nat,
    NftChain,
    NftParseResult,
    NftRule,
    NftRuleset,
    NftSet,
    NftTable,
    Right,
    Selector,
    SetRef,
    SetStmt,
    Simple,
    Statement,
    Tproxy,
    Unmodelled,
    Value,
    Verdict,
    Vmap,
    parse_priority,
)
from meshviz.engine.nftables.vocabulary import (
    BARE_META,
    BINOPS,
    CT_KEYS,
    FIB_FLAGS,
    FIB_RESULTS,
    JUMPS,
    META_KEYS,
    PAYLOAD,
    RELATIONAL,
    SOCKET_KEYS,
    UNMODELLED_WORDS,
    VERDICTS,
)


class NftSyntaxError(Exception):
    def __init__(self, token: Token | None, message: str):
        super().__init__(message)
        self.token = token
        self.message = message


# --------------------------------------------------------------------------
# Rule statements
# --------------------------------------------------------------------------


class _Stmts:
    """Recursive descent over one rule's tokens."""

    def __init__(self, toks: list[Token]):
        self.toks = toks
        self.i = 0

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def word(self, k: int = 0) -> str | None:
        t = self.peek(k)
        return t.text if t is not None and t.kind in ("WORD", "STRING") else None

    def take(self, what: str = "a value") -> Token:
        t = self.peek()
        if t is None:
            last = self.toks[-1] if self.toks else None
            raise NftSyntaxError(last, f"expected {what} at the end of the rule")
        self.i += 1
        return t

    def take_word(self, what: str) -> str:
        t = self.take(what)
        if t.kind not in ("WORD", "STRING"):
            raise NftSyntaxError(t, f"expected {what}, found {t.text!r}")
        return t.text

    def rest_text(self, start: int) -> str:
        return " ".join(_tok_text(t) for t in self.toks[start:])

    def parse(self) -> tuple[list[Statement], str | None]:
        out: list[Statement] = []
        comment: str | None = None
        while self.i < len(self.toks):
            start = self.i
            t = self.take()
            w = t.text
            if t.kind != "WORD":
                raise NftSyntaxError(t, f"unexpected {t.text!r}")
            if w in VERDICTS:
                out.append(Verdict(w))
            elif w in JUMPS:
                out.append(Verdict(w, self.take_word("a chain name")))
            elif w == "counter":
                packets = bytes_ = 0
                while self.word() in ("packets", "bytes"):
                    key = self.take_word("packets or bytes")
                    n = self.take_word("a number")
                    if not n.isdecimal():
                        raise NftSyntaxError(self.toks[self.i - 1], f"counter {key} needs a number, not {n!r}")
                    packets, bytes_ = (int(n), bytes_) if key == "packets" else (packets, int(n))
                out.append(Counter(packets, bytes_))
            elif w == "comment":
                comment = self.take_word("a comment")
            elif w == "notrack":
                out.append(Simple("notrack"))
            elif w == "log":
                args: list[str] = []
                while self.word() in ("prefix", "level", "flags", "group", "snaplen", "queue-threshold"):
                    args.append(self.take_word("a log option"))
                    v = self.take()
                    args.append(_tok_text(v))
                    while self.peek() is not None and self.peek().kind == "COMMA":  # type: ignore[union-attr]
                        self.i += 1
                        args[-1] += "," + self.take_word("a log flag")
                out.append(Simple("log", " ".join(args)))
            elif w in ("redirect", "masquerade", "dnat", "snat"):
                out.append(_nat(self, w, start))
            elif w == "tproxy":
                out.append(_tproxy(self))
            elif (w in UNMODELLED_WORDS and not (w == "numgen" and self.word() == "random")) or (
                w == "ct" and self.word() == "helper" and self.word(1) == "set"
            ):
                why = UNMODELLED_WORDS.get(w, "conntrack helpers")
                out.append(Unmodelled(self.rest_text(start), f"{why} not modelled"))
                self.i = len(self.toks)
            else:
                self.i = start
                try:
                    left = self.expr()
                except _NotModelled as e:
                    out.append(Unmodelled(self.rest_text(start), e.why))
                    self.i = len(self.toks)
                    continue
                nxt = self.word()
                if nxt == "set":
                    self.i += 1
                    if not isinstance(left, Selector):
                        raise NftSyntaxError(t, f"cannot set {left.text()}")
                    out.append(SetStmt(left, self.expr()))
                elif nxt == "vmap":
                    self.i += 1
                    m = self.right()
                    if not isinstance(m, AnonSet | SetRef):
                        raise NftSyntaxError(self.toks[self.i - 1], "vmap needs { KEY : VERDICT, ... } or @map")
                    out.append(Vmap(left, m))
                elif nxt == "map":
                    out.append(Unmodelled(self.rest_text(start), "data maps in a relational expression not modelled"))
                    self.i = len(self.toks)
                else:
                    if isinstance(left, Value):
                        raise NftSyntaxError(t, f"unknown expression or statement {w!r}")
                    op, explicit = "==", False
                    if nxt in RELATIONAL:
                        op, explicit = RELATIONAL[nxt], True
                        self.i += 1
                    right = self.right()
                    if self.word() == "/":
                        # `tcp flags syn / syn,ack`: nft's listing of `tcp flags & (syn|ack) == syn`
                        self.i += 1
                        mask = self.right()
                        if not isinstance(right, Value | FlagList) or not isinstance(mask, Value | FlagList):
                            raise NftSyntaxError(self.toks[self.i - 1], "VALUE / MASK needs plain values")
                        left = Binop(left, "&", Value(mask.text()))
                        right, explicit = Value(right.text()), True
                    out.append(Match(left, op, right, explicit))
        return out, comment

    # ---- expressions ----

    def expr(self) -> Expr:
        parts = [self.binop()]
        while self.word() == ".":
            self.i += 1
            parts.append(self.binop())
        return parts[0] if len(parts) == 1 else Concat(tuple(parts))

    def binop(self) -> Expr:
        e = self.primary()
        while self.word() in BINOPS:
            op = BINOPS[self.take_word("an operator")]
            e = Binop(e, op, Value(self.take_word("a number")))
        return e

    def primary(self) -> Expr:
        t = self.take("an expression")
        w = t.text
        if t.kind == "STRING":
            return Value(w)
        if t.kind != "WORD":
            raise NftSyntaxError(t, f"unexpected {w!r}")
        nxt = self.word()
        if w == "meta":
            key = self.take_word("a meta key")
            if key not in META_KEYS:
                raise NftSyntaxError(self.toks[self.i - 1], f"unknown meta key {key!r}")
            return Selector(f"meta {key}")
        if w in BARE_META:
            return Selector(f"meta {w}")
        if w in PAYLOAD and nxt in PAYLOAD[w]:
            self.i += 1
            return Selector(f"{w} {nxt}")
        if w == "ct":
            key = self.take_word("a conntrack key")
            if key in ("original", "reply"):
                key = f"{key} {self.take_word('a conntrack key')}"
            elif key not in CT_KEYS:
                raise NftSyntaxError(self.toks[self.i - 1], f"unknown conntrack key {key!r}")
            return Selector(f"ct {key}")
        if w == "fib":
            flags = [self.take_word("a fib flag")]
            while self.word() == ".":
                self.i += 1
                flags.append(self.take_word("a fib flag"))
            result = self.take_word("a fib result")
            if any(f not in FIB_FLAGS for f in flags) or result not in FIB_RESULTS:
                raise NftSyntaxError(t, f"unknown fib expression fib {' . '.join(flags)} {result}")
            return Selector(f"fib {' . '.join(flags)} {result}")
        if w == "socket":
            key = self.take_word("a socket key")
            if key not in SOCKET_KEYS:
                raise NftSyntaxError(self.toks[self.i - 1], f"unknown socket key {key!r}")
            if key == "cgroupv2":
                raise _NotModelled("socket cgroupv2 not modelled")
            return Selector(f"socket {key}")
        if w == "numgen" and nxt == "random" and self.word(1) == "mod" and (self.word(2) or "").isdecimal():
            self.i += 3
            key = f"numgen random mod {int(self.toks[self.i - 1].text)}"
            if self.word() == "offset" and (self.word(1) or "").isdecimal():
                key += f" offset {int(self.toks[self.i + 1].text)}"
                self.i += 2
            return Selector(key)
        if w in UNMODELLED_WORDS or w.startswith("@"):
            raise _NotModelled(f"{UNMODELLED_WORDS.get(w, 'raw payload expressions')} not modelled")
        return Value(w)

    def right(self) -> Right:
        t = self.take("a value")
        if t.kind == "LBRACE":
            return AnonSet(self.elements())
        if t.kind == "STRING":
            return Value(t.text)
        if t.kind != "WORD":
            raise NftSyntaxError(t, f"expected a value, found {t.text!r}")
        if t.text.startswith("@"):
            return SetRef(t.text[1:])
        if self.peek() is not None and self.peek().kind == "COMMA":  # type: ignore[union-attr]
            flags = [t.text]
            while self.peek() is not None and self.peek().kind == "COMMA":  # type: ignore[union-attr]
                self.i += 1
                flags.append(self.take_word("a flag"))
            return FlagList(tuple(flags))
        # `ip daddr 10.0.0.1 . tcp dport 80`-style concatenated values are not written this way; keep one value.
        return Value(t.text)

    def elements(self) -> tuple[Element, ...]:
        """Elements up to the closing brace (the LBRACE was taken)."""
        return parse_elements(self)


class _NotModelled(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def _tok_text(t: Token) -> str:
    return f'"{t.text}"' if t.kind == "STRING" else t.text


def parse_elements(p: _Stmts) -> tuple[Element, ...]:
    out: list[Element] = []
    while True:
        t = p.peek()
        if t is None:
            raise NftSyntaxError(p.toks[-1] if p.toks else None, "set without its closing brace")
        if t.kind == "RBRACE":
            p.i += 1
            return tuple(out)
        if t.kind in ("COMMA", "NL"):
            p.i += 1
            continue
        key = [Value(p.take_word("an element"))]
        while p.word() == ".":
            p.i += 1
            key.append(Value(p.take_word("an element")))
        data: Value | Verdict | None = None
        if p.word() == ":":
            p.i += 1
            w = p.take_word("the element's data")
            if w in VERDICTS:
                data = Verdict(w)
            elif w in JUMPS:
                data = Verdict(w, p.take_word("a chain name"))
            else:
                data = Value(w)
        # Element options (timeout, expires, comment, counter) are skipped: they do not change a lookup.
        while p.word() in ("timeout", "expires", "comment", "counter", "packets", "bytes"):
            kw = p.take_word("an element option")
            if kw != "counter":
                p.take()
        out.append(Element(tuple(key), data))


def parse_rule_tokens(toks: list[Token]) -> tuple[list[Statement], str | None]:
    return _Stmts(toks).parse()


def _split_addr_port(spec: str) -> tuple[str | None, int | None]:
    """`:15001`, `10.0.0.1:8080`, `[fd00::1]:80`, `fd00::1`, `10.0.0.1` -> (address, port)."""
    if spec.startswith("["):
        addr, _, rest = spec[1:].partition("]")
        return addr or None, _port(rest[1:]) if rest.startswith(":") else None
    if spec.count(":") == 1:
        addr, _, port = spec.partition(":")
        return addr or None, _port(port)
    return spec or None, None


def _port(text: str) -> int:
    first = text.split("-")[0]
    if not first.isdecimal() or int(first) > 65535:
        raise NftSyntaxError(None, f"not a port: {text!r}")
    return int(first)


def _nat_flags(p: _Stmts) -> tuple[str, ...]:
    flags: list[str] = []
    while p.word() in ("random", "fully-random", "persistent", "netmap"):
        flags.append(p.take_word("a flag"))
        while p.peek() is not None and p.peek().kind == "COMMA":  # type: ignore[union-attr]
            p.i += 1
            flags.append(p.take_word("a flag"))
    return tuple(flags)


def _nat(self: _Stmts, kind: str, start: int) -> Statement:
    fam = None
    if self.word() in ("ip", "ip6") and self.word(1) == "to":
        fam = self.take_word("a family")
    addr: str | None = None
    port: int | None = None
    if self.word() == "to":
        self.i += 1
        if self.word(1) in ("map", ".") or self.word() in PAYLOAD or self.word() == "meta":
            self.i = len(self.toks)
            return Unmodelled(self.rest_text(start), f"{kind} to a mapped address not modelled")
        spec = self.take_word("an address or port")
        if kind in ("redirect", "masquerade"):
            if not spec.lstrip(":").split("-")[0].isdecimal():
                raise NftSyntaxError(self.toks[self.i - 1], f"{kind} to needs :PORT, not {spec!r}")
            port = _port(spec.lstrip(":"))
        else:
            addr, port = _split_addr_port(spec)
    return Nat(kind, fam, addr, port, _nat_flags(self))


def _tproxy(self: _Stmts) -> Statement:
    fam = None
    if self.word() in ("ip", "ip6"):
        fam = self.take_word("a family")
    if self.word() != "to":
        raise NftSyntaxError(self.peek() or (self.toks[-1] if self.toks else None), "tproxy needs `to [ADDR]:PORT`")
    self.i += 1
    addr, port = _split_addr_port(self.take_word("an address or port"))
    return Tproxy(fam, addr, port)


# --------------------------------------------------------------------------
# Commands and blocks
# --------------------------------------------------------------------------


@dataclass
class _ChainB:
    name: str
    rules: list[NftRule] = field(default_factory=list)
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    device: str | None = None
    handle: int | None = None
    ref: SourceRef | None = None
    later: Later[NftRule] | None = None  # rules read on first use (the listing parser's)


@dataclass
class _SetB:
    name: str
    key_type: str = ""
    data_type: str | None = None
    flags: tuple[str, ...] = ()
    elements: list[Element] = field(default_factory=list)
    ref: SourceRef | None = None
    later: Later[Element] | None = None  # elements read on first use (the listing parser's)


@dataclass
class _TableB:
    family: str
    name: str
    chains: dict[str, _ChainB] = field(default_factory=dict)
    sets: dict[str, _SetB] = field(default_factory=dict)
    handle: int | None = None
    ref: SourceRef | None = None
    records: ChainRecords | None = None  # the listing parser's: every chain by position, most as offsets
    resolved: bool = False  # the listing parser found every chain and set its text names


def _chain_of(cb: _ChainB) -> NftChain:
    return NftChain(
        cb.name,
        cb.later if cb.later is not None else tuple(cb.rules),
        cb.type,
        cb.hook,
        cb.priority,
        cb.policy or ("accept" if cb.hook else None),  # the kernel's default policy
        cb.device,
        cb.handle,
        cb.ref,
    )


def _set_of(sb: _SetB) -> NftSet:
    return NftSet(
        sb.name,
        sb.key_type,
        sb.data_type,
        sb.flags,
        sb.later if sb.later is not None else tuple(sb.elements),
        sb.ref,
    )


class _Parser:
    def __init__(self, text: str, source: str, first_line: int = 1):
        self.source = source
        self.lines = text.splitlines()
        self.first_line = first_line  # the number of text's first line (a piece of a bigger text)
        self.tables: dict[tuple[str, str], _TableB] = {}
        self.errors: list[ParseError] = []
        self.warnings: list[ParseWarning] = []
        self.toks: list[Token] = []
        self.i = 0
        self.commands = 0
        self.blocks = 0
        self.next_handle = 1

    # ---- plumbing ----

    def line_text(self, line: int) -> str:
        n = line - self.first_line
        return self.lines[n] if 0 <= n < len(self.lines) else ""

    def error(self, tok: Token | None, message: str) -> None:
        line = tok.line if tok is not None else 1
        col = tok.column if tok is not None else 1
        self.errors.append(ParseError(self.source, line, col, self.line_text(line).strip(), message))

    def ref(self, tok: Token) -> SourceRef:
        return SourceRef(self.source, tok.line, self.line_text(tok.line).strip())

    def statement(self) -> list[Token]:
        """Tokens up to the end of the line or `;` (line ends inside braces do not end it)."""
        out: list[Token] = []
        depth = 0
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if depth == 0 and t.kind in ("NL", "SEMI"):
                self.i += 1
                break
            if depth == 0 and t.kind == "RBRACE":
                break  # the enclosing block ends: leave the brace to it
            self.i += 1
            if t.kind == "LBRACE":
                depth += 1
            elif t.kind == "RBRACE":
                depth -= 1
            if t.kind == "NL":
                continue
            out.append(t)
        return out

    def skip_to_line_end(self) -> None:
        depth = 0
        while self.i < len(self.toks):
            t = self.toks[self.i]
            self.i += 1
            if t.kind == "LBRACE":
                depth += 1
            elif t.kind == "RBRACE":
                depth = max(0, depth - 1)
            elif t.kind in ("NL", "SEMI") and depth == 0:
                return

    # ---- run ----

    def run(self, text: str) -> NftParseResult:
        try:
            self.toks = tokenize(text)
        except LexError as e:
            self.errors.append(ParseError(self.source, e.line, e.column, self.line_text(e.line).strip(), e.message))
            return self.result()
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.kind in ("NL", "SEMI"):
                self.i += 1
                continue
            start = self.i
            try:
                if t.kind == "WORD" and t.text == "table":
                    self.i += 1
                    self.table_block()
                elif t.kind == "WORD" and t.text in (
                    "add",
                    "create",
                    "insert",
                    "replace",
                    "delete",
                    "destroy",
                    "flush",
                ):
                    self.command()
                else:
                    raise NftSyntaxError(
                        t, f"expected a command (add, insert, flush, delete, ...) or a table block, found {t.text!r}"
                    )
            except (NftSyntaxError, ValueError, IndexError) as e:
                if isinstance(e, NftSyntaxError):
                    self.error(e.token or t, e.message)
                else:  # a number or position the checks above let through: still an error with its line
                    self.error(t, f"cannot read this command: {e}")
                self.i = max(self.i, start + 1)
                if self.i > 0 and self.toks[self.i - 1].kind not in ("NL", "SEMI"):
                    self.skip_to_line_end()
        return self.result()

    def result(self) -> NftParseResult:
        tables = tuple(
            NftTable(
                tb.family,
                tb.name,
                tuple(_chain_of(cb) for cb in tb.chains.values()),
                tuple(_set_of(sb) for sb in tb.sets.values()),
                tb.handle,
                tb.ref,
            )
            for tb in self.tables.values()
        )
        fmt = "list" if self.blocks and not self.commands else "script"
        self.check_references(tables)
        return NftParseResult(NftRuleset(tables, self.source), tuple(self.errors), tuple(self.warnings), fmt)

    def check_references(self, tables: tuple[NftTable, ...]) -> None:
        for tb in tables:
            for c in tb.chains:
                self.check_chain_references(tb, c)

    def check_chain_references(self, tb: NftTable, c: NftChain) -> None:
        """An error for each jump to a chain the table lacks, a warning for each set or map it lacks."""
        later = c.pending_rules()
        if later is not None and isinstance(later.build, DeferredRules) and later.build.resolves(tb):
            return  # every chain and set it names exists: nothing to say (and nothing to build)
        for r in c.rules:
            for s in r.statements:
                targets: list[str] = []
                if isinstance(s, Verdict) and s.chain:
                    targets.append(s.chain)
                if isinstance(s, Vmap) and isinstance(s.map, AnonSet):
                    targets += [e.data.chain for e in s.map.elements if isinstance(e.data, Verdict) and e.data.chain]
                refs = [s.right.name] if isinstance(s, Match) and isinstance(s.right, SetRef) else []
                if isinstance(s, Vmap) and isinstance(s.map, SetRef):
                    refs.append(s.map.name)
                line = r.ref.line if r.ref else 1
                text = r.ref.text if r.ref else r.text()
                for name in targets:
                    if tb.chain(name) is None:
                        self.errors.append(
                            ParseError(
                                self.source,
                                line,
                                1,
                                text,
                                f"{tb.label}: jump to chain {name!r} that does not exist",
                            )
                        )
                for name in refs:
                    if tb.set(name) is None:
                        self.warnings.append(
                            ParseWarning(
                                self.source,
                                line,
                                text,
                                f"{tb.label}: set or map @{name} is not in the "
                                "evidence: a packet reaching this rule is "
                                "UNSUPPORTED",
                            )
                        )

    # ---- names ----

    def family_and_name(self, toks: list[Token], pos: int) -> tuple[str, str, int]:
        """`[FAMILY] NAME` at toks[pos] -> (family, name, next position); the family defaults to ip."""
        if pos >= len(toks):
            raise NftSyntaxError(toks[-1] if toks else None, "expected a table name")
        if toks[pos].text in FAMILIES and pos + 1 < len(toks) and toks[pos + 1].kind in ("WORD", "STRING"):
            return toks[pos].text, toks[pos + 1].text, pos + 2
        return "ip", toks[pos].text, pos + 1

    def get_table(self, family: str, name: str, tok: Token, create: bool) -> _TableB:
        tb = self.tables.get((family, name))
        if tb is None:
            if not create:
                raise NftSyntaxError(tok, f"table {family} {name} does not exist")
            tb = _TableB(family, name, ref=self.ref(tok))
            self.tables[(family, name)] = tb
        return tb

    def get_chain(self, tb: _TableB, name: str, tok: Token, create: bool) -> _ChainB:
        cb = tb.chains.get(name)
        if cb is None:
            if not create:
                raise NftSyntaxError(tok, f"chain {name} does not exist in table {tb.family} {tb.name}")
            cb = _ChainB(name, ref=self.ref(tok))
            tb.chains[name] = cb
        return cb

    # ---- nft -f commands ----

    def command(self) -> None:
        toks = self.statement()
        self.commands += 1
        verb, obj = toks[0], toks[1] if len(toks) > 1 else None
        if obj is None:
            raise NftSyntaxError(verb, f"{verb.text} what? (table, chain, rule, set, map, element)")
        what = obj.text
        if verb.text == "flush" and what == "ruleset":
            self.tables.clear()
            return
        if what == "table":
            fam, name, pos = self.family_and_name(toks, 2)
            if verb.text in ("add", "create"):
                self.get_table(fam, name, obj, create=True)
                self.inline_block(toks, pos, lambda: self.table_body(self.tables[(fam, name)]))
            elif verb.text == "flush":
                tb = self.get_table(fam, name, obj, create=False)
                for cb in tb.chains.values():
                    cb.rules.clear()
                for sb in tb.sets.values():
                    sb.elements.clear()
            elif verb.text in ("delete", "destroy"):
                if self.tables.pop((fam, name), None) is None and verb.text == "delete":
                    raise NftSyntaxError(obj, f"table {fam} {name} does not exist")
            else:
                raise NftSyntaxError(verb, f"cannot {verb.text} a table")
            return
        if what == "chain":
            fam, tname, pos = self.family_and_name(toks, 2)
            if pos >= len(toks):
                raise NftSyntaxError(toks[-1], "expected a chain name")
            cname = toks[pos].text
            tb = self.get_table(fam, tname, obj, create=False)
            if verb.text in ("add", "create"):
                cb = self.get_chain(tb, cname, obj, create=True)
                self.inline_block(toks, pos + 1, lambda: self.chain_body(tb, cb))
            elif verb.text == "flush":
                self.get_chain(tb, cname, obj, create=False).rules.clear()
            elif verb.text in ("delete", "destroy"):
                tb.chains.pop(cname, None)
            else:
                raise NftSyntaxError(verb, f"cannot {verb.text} a chain")
            return
        if what == "rule":
            self.rule_command(verb, obj, toks)
            return
        if what in ("set", "map"):
            fam, tname, pos = self.family_and_name(toks, 2)
            tb = self.get_table(fam, tname, obj, create=False)
            if pos >= len(toks):
                raise NftSyntaxError(toks[-1], f"expected a {what} name")
            sname = toks[pos].text
            if verb.text in ("add", "create"):
                sb = tb.sets.setdefault(sname, _SetB(sname, ref=self.ref(obj)))
                self.inline_block(toks, pos + 1, lambda: self.set_body(sb, what == "map"))
            elif verb.text == "flush":
                self.get_set(tb, sname, obj).elements.clear()
            elif verb.text in ("delete", "destroy"):
                tb.sets.pop(sname, None)
            return
        if what == "element":
            fam, tname, pos = self.family_and_name(toks, 2)
            tb = self.get_table(fam, tname, obj, create=False)
            if pos + 1 >= len(toks) or toks[pos + 1].kind != "LBRACE":
                raise NftSyntaxError(toks[-1], "expected SET { ELEMENTS }")
            sb = self.get_set(tb, toks[pos].text, toks[pos])
            p = _Stmts(toks[pos + 2 :])
            elems = parse_elements(p)
            if verb.text in ("add", "create"):
                have = set(sb.elements)
                sb.elements += [e for e in dict.fromkeys(elems) if e not in have]
            elif verb.text in ("delete", "destroy"):
                keys = {e.key for e in elems}
                sb.elements[:] = [e for e in sb.elements if e.key not in keys]
            return
        if what in ("flowtable", "counter", "quota", "limit", "ct", "secmark", "synproxy"):
            self.warnings.append(
                ParseWarning(
                    self.source, verb.line, self.line_text(verb.line).strip(), f"{what} objects are not modelled"
                )
            )
            return
        raise NftSyntaxError(obj, f"unknown object {what!r}")

    def get_set(self, tb: _TableB, name: str, tok: Token) -> _SetB:
        sb = tb.sets.get(name)
        if sb is None:
            raise NftSyntaxError(tok, f"set {name} does not exist in table {tb.family} {tb.name}")
        return sb

    def inline_block(self, toks: list[Token], pos: int, body: object) -> None:
        """`add chain t c { type ...; }`: parse what is between the braces with the block grammar."""
        if pos >= len(toks):
            return
        if toks[pos].kind != "LBRACE" or toks[-1].kind != "RBRACE":
            raise NftSyntaxError(toks[pos], f"unexpected {toks[pos].text!r}")
        saved, saved_i = self.toks, self.i
        self.toks, self.i = [*toks[pos + 1 : -1], Token("SEMI", ";", toks[-1].line, toks[-1].column)], 0
        try:
            body()  # type: ignore[operator]
        finally:
            self.toks, self.i = saved, saved_i

    def rule_command(self, verb: Token, obj: Token, toks: list[Token]) -> None:
        fam, tname, pos = self.family_and_name(toks, 2)
        if pos >= len(toks):
            raise NftSyntaxError(toks[-1], "expected a chain name")
        tb = self.get_table(fam, tname, obj, create=False)
        cb = self.get_chain(tb, toks[pos].text, toks[pos], create=False)
        pos += 1
        where: tuple[str, int] | None = None
        if pos + 1 < len(toks) and toks[pos].text in ("index", "position", "handle") and toks[pos + 1].text.isdecimal():
            where = (toks[pos].text, int(toks[pos + 1].text))
            pos += 2
        if verb.text in ("delete", "destroy"):
            if where is None or where[0] != "handle":
                raise NftSyntaxError(obj, "delete rule needs `handle N`")
            cb.rules[:] = [r for r in cb.rules if r.handle != where[1]]
            return
        rule = self.make_rule(tb, cb, toks[pos:], verb)
        if verb.text == "replace":
            if where is None or where[0] != "handle":
                raise NftSyntaxError(obj, "replace rule needs `handle N`")
            at = self.handle_pos(cb, where[1], obj)
            cb.rules[at] = replace(rule, handle=where[1])
            return
        if verb.text not in ("add", "create", "insert"):
            raise NftSyntaxError(verb, f"cannot {verb.text} a rule")
        insert = verb.text == "insert"
        if where is None:
            at = 0 if insert else len(cb.rules)
        elif where[0] == "index":
            if where[1] > len(cb.rules) - (0 if insert else 1) and not (insert and where[1] == len(cb.rules)):
                raise NftSyntaxError(
                    obj, f"index {where[1]} is past the end of chain {cb.name} ({len(cb.rules)} rules)"
                )
            at = where[1] if insert else where[1] + 1
        else:  # position/handle H: before (insert) or after (add) the rule with that handle
            at = self.handle_pos(cb, where[1], obj) + (0 if insert else 1)
        cb.rules.insert(at, rule)

    def handle_pos(self, cb: _ChainB, handle: int, tok: Token) -> int:
        for n, r in enumerate(cb.rules):
            if r.handle == handle:
                return n
        raise NftSyntaxError(tok, f"no rule with handle {handle} in chain {cb.name}")

    def make_rule(self, tb: _TableB, cb: _ChainB, toks: list[Token], at: Token, handle: int | None = None) -> NftRule:
        stmts, comment = parse_rule_tokens(toks)
        if not stmts:
            raise NftSyntaxError(at, "a rule without statements")
        if handle is None:
            handle = self.next_handle
        self.next_handle = max(self.next_handle, handle) + 1
        return NftRule(tb.family, tb.name, cb.name, tuple(stmts), handle, comment, self.ref(at))

    # ---- block syntax (nft list ruleset, nft -f) ----

    def expect(self, kind: str, what: str) -> Token:
        while self.i < len(self.toks) and self.toks[self.i].kind == "NL":
            self.i += 1
        if self.i >= len(self.toks) or self.toks[self.i].kind != kind:
            t = self.toks[self.i] if self.i < len(self.toks) else (self.toks[-1] if self.toks else None)
            raise NftSyntaxError(t, f"expected {what}")
        self.i += 1
        return self.toks[self.i - 1]

    def table_block(self) -> None:
        self.blocks += 1
        head = self.toks[self.i - 1]
        toks = []
        while self.i < len(self.toks) and self.toks[self.i].kind in ("WORD", "STRING"):
            toks.append(self.toks[self.i])
            self.i += 1
        fam, name, _ = self.family_and_name(toks, 0) if toks else ("ip", "", 0)
        if not name:
            raise NftSyntaxError(head, "expected a table name")
        tb = self.get_table(fam, name, head, create=True)
        self.expect("LBRACE", "{ after the table name")
        if self.i < len(self.toks) and self.toks[self.i].kind == "HANDLE":
            tb.handle = int(self.toks[self.i].text)
            self.i += 1
        self.table_body(tb)
        if self.i < len(self.toks) and self.toks[self.i].kind == "RBRACE":
            self.i += 1
        elif self.toks is not None and self.i >= len(self.toks) and self.blocks:
            pass

    def table_body(self, tb: _TableB) -> None:
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.kind in ("NL", "SEMI", "HANDLE"):
                self.i += 1
                continue
            if t.kind == "RBRACE":
                return
            if t.kind == "WORD" and t.text == "chain":
                self.i += 1
                name = self.expect("WORD", "a chain name")
                cb = self.get_chain(tb, name.text, t, create=True)
                self.expect("LBRACE", "{ after the chain name")
                self.chain_body(tb, cb)
                self.expect("RBRACE", "} closing the chain")
            elif t.kind == "WORD" and t.text in ("set", "map"):
                self.i += 1
                name = self.expect("WORD", f"a {t.text} name")
                sb = tb.sets.setdefault(name.text, _SetB(name.text, ref=self.ref(t)))
                self.expect("LBRACE", "{ after the set name")
                self.set_body(sb, t.text == "map")
                self.expect("RBRACE", "} closing the set")
            elif t.kind == "WORD" and t.text in ("flags", "comment"):
                self.statement()
            elif t.kind == "WORD" and t.text in ("flowtable", "counter", "quota", "limit", "ct", "secmark", "synproxy"):
                self.warnings.append(
                    ParseWarning(
                        self.source, t.line, self.line_text(t.line).strip(), f"{t.text} objects are not modelled"
                    )
                )
                self.i += 1
                self.skip_block()
            else:
                raise NftSyntaxError(t, f"expected chain, set or map in table {tb.family} {tb.name}, found {t.text!r}")

    def skip_block(self) -> None:
        depth = 0
        while self.i < len(self.toks):
            t = self.toks[self.i]
            self.i += 1
            if t.kind == "LBRACE":
                depth += 1
            elif t.kind == "RBRACE":
                depth -= 1
                if depth <= 0:
                    return

    def chain_body(self, tb: _TableB, cb: _ChainB) -> None:
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.kind in ("NL", "SEMI"):
                self.i += 1
                continue
            if t.kind == "HANDLE":
                cb.handle = int(t.text)
                self.i += 1
                continue
            if t.kind == "RBRACE":
                return
            start_line = t.line
            toks = self.statement()
            handle = None
            if toks and toks[-1].kind == "HANDLE":
                handle = int(toks.pop().text)
            elif self.i < len(self.toks) and self.toks[self.i - 1].kind == "NL":
                pass
            if not toks:
                continue
            w = toks[0].text
            if w == "type" and toks[0].kind == "WORD":
                self.chain_spec(cb, toks)
            elif w == "policy" and toks[0].kind == "WORD" and len(toks) == 2:
                cb.policy = toks[1].text
            elif w == "comment" and toks[0].kind == "WORD" and len(toks) == 2:
                continue
            else:
                try:
                    cb.rules.append(self.make_rule(tb, cb, toks, toks[0], handle))
                except NftSyntaxError as e:
                    self.error(e.token or toks[0], e.message)
                except (ValueError, IndexError) as e:
                    self.error(toks[0], f"cannot read this rule: {e}")
            del start_line

    def chain_spec(self, cb: _ChainB, toks: list[Token]) -> None:
        """`type nat hook prerouting [device eth0] priority -100 [; policy accept]`."""
        words = [t.text for t in toks]
        try:
            cb.type = words[1]
            k = words.index("hook")
            cb.hook = words[k + 1]
            if "device" in words:
                cb.device = words[words.index("device") + 1]
            p = words.index("priority")
            cb.priority = parse_priority(" ".join(words[p + 1 :]))
        except (ValueError, IndexError) as e:
            raise NftSyntaxError(toks[0], "a base chain needs `type T hook H priority P`") from e
        if cb.type not in ("filter", "nat", "route"):
            raise NftSyntaxError(toks[1], f"unknown chain type {cb.type!r} (filter, nat, route)")

    def set_body(self, sb: _SetB, is_map: bool) -> None:
        while self.i < len(self.toks):
            t = self.toks[self.i]
            if t.kind in ("NL", "SEMI", "HANDLE"):
                self.i += 1
                continue
            if t.kind == "RBRACE":
                break
            toks = self.statement()
            if toks and toks[-1].kind == "HANDLE":
                toks.pop()
            if not toks:
                continue
            w = toks[0].text
            if w in ("type", "typeof"):
                spec = " ".join(x.text for x in toks[1:])
                key, sep, data = spec.partition(" : ")
                sb.key_type, sb.data_type = key, (data if sep else None)
            elif w == "flags":
                sb.flags = tuple(x.text for x in toks[1:] if x.kind == "WORD")
            elif w == "elements" and len(toks) >= 3 and toks[1].text == "=" and toks[2].kind == "LBRACE":
                sb.elements += list(parse_elements(_Stmts(toks[3:])))
            elif w in ("size", "timeout", "gc-interval", "policy", "auto-merge", "counter", "comment"):
                continue
            else:
                raise NftSyntaxError(toks[0], f"unknown set property {w!r}")
        if is_map and sb.data_type is None:
            sb.data_type = "verdict"


class DeferredRules:
    """A listing's chain body, read into rules on first use by the same code as an eagerly read one
    (`_Parser.chain_body`): the listing parser checked every line against statement shapes that read without
    error, and counted the rules, before deferring it.  `targets` and `sets` over-approximate the chains the
    rules jump to and the sets they name (every `jump X`/`goto X`, every `@X` of the text); None when the
    parser found that its table's whole text names no chain or set the table lacks."""

    __slots__ = (
        "chain",
        "end",
        "family",
        "first_line",
        "next_handle",
        "sets",
        "size",
        "source",
        "start",
        "table",
        "targets",
        "text",
    )

    def __init__(
        self,
        text: str,
        span: tuple[int, int],
        first_line: int,
        where: tuple[str, str, str, str],
        next_handle: int,
        size: int,
    ) -> None:
        self.text = text
        self.start, self.end = span
        self.first_line = first_line
        self.source, self.family, self.table, self.chain = where
        self.next_handle = next_handle
        self.size = size
        self.targets: frozenset[str] | None = None
        self.sets: frozenset[str] | None = None

    def name_targets(self) -> None:
        """Find the chains and sets the body names (its table names some that do not exist)."""
        text, start, end = self.text, self.start, self.end
        self.targets = frozenset(JUMP_TARGETS.findall(text, start, end)) | frozenset(
            GOTO_TARGETS.findall(text, start, end)
        )
        self.sets = frozenset(SET_REFS.findall(text, start, end))

    def resolves(self, table: NftTable) -> bool:
        if self.targets is None or self.sets is None:
            return True
        return all(table.chain(n) is not None for n in self.targets) and all(
            table.set(n) is not None for n in self.sets
        )

    def __call__(self) -> tuple[NftRule, ...]:
        body = self.text[self.start : self.end]
        p = _Parser(body, self.source, self.first_line)
        p.toks = tokenize(body, self.first_line)
        p.next_handle = self.next_handle
        cb = _ChainB(self.chain)
        p.chain_body(_TableB(self.family, self.table), cb)
        if p.errors or p.i != len(p.toks) or len(cb.rules) != self.size:  # the listing parser's checks failed
            raise AssertionError(f"{self.source}:{self.first_line}: a deferred chain body did not read as checked")
        return tuple(cb.rules)


class DeferredElements:
    """A listing's `elements = { ... }`, read into elements on first use by `parse_elements`, as an eagerly
    read one; the listing parser checked the text against element shapes that read without error."""

    __slots__ = ("end", "start", "text")

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text, self.start, self.end = text, start, end

    def __call__(self) -> tuple[Element, ...]:
        # the text after `elements = {`, its closing brace included
        return parse_elements(_Stmts(tokenize(self.text[self.start : self.end])))


class _ListingParser(_Parser):
    """`nft list ruleset` read block by block (`listing.scan`): a chain whose lines all have known statement
    shapes is counted and deferred (`DeferredRules`), its jumps and sets checked; other chains, base chains'
    `type ... priority ...;` lines and sets' properties are read at once by `_Parser`'s own code on their
    tokens.  Whatever the scan does not recognise (`run` returns None) is left to the general parser."""

    def __init__(self, text: str, source: str):
        super().__init__("", source)
        self.text = text if text.endswith("\n") else text + "\n"
        self.all_lines: list[str] | None = None

    def line_text(self, line: int) -> str:
        if self.all_lines is None:
            self.all_lines = self.text.split("\n")
        return self.all_lines[line - 1] if 0 < line <= len(self.all_lines) else ""

    def run_listing(self) -> NftParseResult | None:
        try:
            self.read_blocks()
        except (NotAListing, NftSyntaxError, LexError, ValueError, IndexError):
            return None
        return self.result()

    def read_tokens(self, span: tuple[int, int], first_line: int) -> list[Token]:
        """The tokens of text[span] (whole lines), its braces balanced; NotAListing otherwise."""
        toks = tokenize(self.text[span[0] : span[1]], first_line)
        depth = 0
        for t in toks:
            if t.kind == "LBRACE":
                depth += 1
            elif t.kind == "RBRACE":
                depth -= 1
                if depth < 0:
                    raise NotAListing(f"line {t.line}: a closing brace out of place")
        if depth:
            raise NotAListing(f"line {first_line}: braces not closed")
        return toks

    def read_with(self, toks: list[Token], body: Callable[[], None]) -> None:
        """Run one of `_Parser`'s block readers over `toks`, which it must read to the end."""
        self.toks, self.i = toks, 0
        body()
        if self.i != len(toks):
            raise NotAListing(f"line {toks[self.i].line}: not read to the end")

    def read_blocks(self) -> None:
        text, source = self.text, self.source
        tb: _TableB | None = None
        records: ChainRecords | None = None
        table_start = 0
        for b in scan(text, self):
            if isinstance(b, Chain):
                assert tb is not None and records is not None
                records.add(b.name, b.line)
                cb = tb.chains[b.name] = _ChainB(b.name, handle=b.handle, ref=SourceRef(source, b.line, b.text))
                first = b.line + 1
                if b.spec is not None:
                    toks = self.read_tokens(b.spec, first)
                    self.read_with(toks, partial(self.chain_body, tb, cb))
                    if cb.rules:
                        raise NotAListing(f"line {first}: a rule beside the chain's type")
                    first += 1
                if not (b.checked and self.defer(tb, cb, *b.body, first)):
                    toks = self.read_tokens(b.body, first)
                    self.read_with(toks, partial(self.chain_body, tb, cb))
            elif isinstance(b, Table):
                if (b.family, b.name) in self.tables:
                    raise NotAListing(f"line {b.line}: table {b.family} {b.name} again")
                records = b.chains
                tb = _TableB(b.family, b.name, handle=b.handle, ref=SourceRef(source, b.line, b.text), records=records)
                self.tables[(b.family, b.name)] = tb
                self.blocks += 1
                table_start = b.start
            elif isinstance(b, Set):
                assert tb is not None
                if b.name in tb.sets:
                    raise NotAListing(f"line {b.line}: set {b.name} again")
                sb = tb.sets[b.name] = _SetB(b.name, ref=SourceRef(source, b.line, b.text))
                toks = self.read_tokens(b.props, b.line + 1)
                self.read_with(toks, partial(self.set_body, sb, b.kind == "map"))
                if b.elements is not None:
                    sb.later = Later(DeferredElements(text, *b.elements))
            else:
                assert tb is not None
                self.check_names(tb, table_start, b.end)
                tb = records = None

    def defer(self, tb: _TableB, cb: _ChainB, start: int, end: int, first_line: int) -> bool:
        """Leave a checked chain body to be read on first use (True), or say it is to be read now (False: some
        rules carry a handle and some do not)."""
        text = self.text
        size = text.count("\n", start, end)
        handle = self.next_handle
        if text.find("# handle", start, end) >= 0:
            handles = [int(h) for h in HANDLES.findall(text, start, end)]
            if len(handles) != size:
                return False
            for h in handles:
                self.next_handle = max(self.next_handle, h) + 1
        else:
            self.next_handle += size
        body = DeferredRules(text, (start, end), first_line, (self.source, tb.family, tb.name, cb.name), handle, size)
        cb.later = Later(body, size, 0)
        return True

    def check_names(self, tb: _TableB, start: int, end: int) -> None:
        """Do the chains and sets the table's text names (every `jump X`, `goto X`, `@X`) all exist?  Then its
        deferred chains need no check of their own (`DeferredRules.resolves`); otherwise each gets its names."""
        text = self.text
        if _names_known(text, start, end, tb.records.index if tb.records is not None else tb.chains, tb.sets):
            tb.resolved = True
            return
        for cb in tb.chains.values():
            if cb.later is not None and isinstance(cb.later.build, DeferredRules):
                cb.later.build.name_targets()

    def result(self) -> NftParseResult:
        """As `_Parser.result`, a table's chains left to `ListingChains`; a table whose text names only chains
        and sets it has needs no reference check (nothing is built for one)."""
        tables = []
        for tb in self.tables.values():
            assert tb.records is not None
            eager = {tb.records.index[cb.name]: _chain_of(cb) for cb in tb.chains.values()}
            index = ListingChains(self.text, self.source, tb, eager)
            t = NftTable(
                tb.family,
                tb.name,
                Later(index, index.chain_count()),
                tuple(_set_of(sb) for sb in tb.sets.values()),
                tb.handle,
                tb.ref,
            )
            tables.append(t)
            # A chain read at once may spell a name so that the table's text search missed it (`jump  x`).
            for c in t.chains if not tb.resolved else (c for _, c in sorted(eager.items())):
                self.check_chain_references(t, c)
        fmt = "list" if self.blocks and not self.commands else "script"
        return NftParseResult(NftRuleset(tuple(tables), self.source), tuple(self.errors), tuple(self.warnings), fmt)


def _names_known(text: str, start: int, end: int, chains: Container[str], sets: Container[str]) -> bool:
    """Does every `jump X`, `goto X` and `@X` of text[start:end] name one of `chains` or `sets`?  (Match by
    match, keeping none: a kube-proxy listing names ~60,000.)"""
    for pattern, known in ((JUMP_TARGETS, chains), (GOTO_TARGETS, chains), (SET_REFS, sets)):
        for m in pattern.finditer(text, start, end):
            if m[1] not in known:
                return False
    return True


class ListingChains(ChainIndex):
    """A listing table's chains (`ChainRecords`): the few the parser read itself (base chains, chains with lines
    of other shapes) built already, every other one built from its offsets when it is first asked for, with its
    rules deferred (`DeferredRules`) as before."""

    __slots__ = ("built", "eager", "family", "records", "resolved", "source", "table", "text")

    def __init__(self, text: str, source: str, tb: _TableB, eager: dict[int, NftChain]) -> None:
        assert tb.records is not None
        self.text, self.source, self.family, self.table = text, source, tb.family, tb.name
        self.records = tb.records
        self.resolved = tb.resolved
        self.eager = eager
        self.built: dict[int, NftChain] = dict(eager)

    def at(self, n: int) -> NftChain:
        c = self.built.get(n)
        if c is None:
            r, text = self.records, self.text
            if r.runs:
                r.locate(text)
            name, line = r.names[n], r.lines[n]
            (head, head_end), (start, end) = r.spans(n, text)
            size = text.count("\n", start, end)
            body = DeferredRules(
                text, (start, end), line + 1, (self.source, self.family, self.table, name), r.first_handles[n], size
            )
            if not self.resolved:
                body.name_targets()
            ref = SourceRef(self.source, line, text[head:head_end])
            c = self.built[n] = NftChain(name, Later(body, size, 0), ref=ref)
        return c

    def __call__(self) -> tuple[NftChain, ...]:
        return tuple(self.at(n) for n in range(len(self.records.names)))

    def chain(self, name: str) -> NftChain | None:
        n = self.records.index.get(name)
        return None if n is None else self.at(n)

    def base_chains(self) -> tuple[NftChain, ...]:
        return tuple(c for _, c in sorted(self.eager.items()) if c.base)

    def chain_count(self) -> int:
        return len(self.records.names)

    def rule_count(self) -> int:
        return self.records.rules + sum(c.rule_count() for c in self.eager.values())

    def unmodelled_count(self) -> int:
        return sum(c.unmodelled_count() for c in self.eager.values())  # the others' shapes are all modelled


def parse_nftables(text: str, source: str = "nftables", *, fast_listing: bool = True) -> NftParseResult:
    """Parse `nft list ruleset` output (also with `-a`), `nft -f` scripts or `nft -j list ruleset` JSON.

    A listing is read by `nftables/listing.py` (statement shapes checked line by line, chain bodies read on
    first use); whatever it does not recognise, and `fast_listing=False`, is read by the general parser here,
    with the same model and the same errors."""
    if text.lstrip().startswith("{"):
        from meshviz.engine.nftables.json_parser import parse_nft_json

        return parse_nft_json(text, source)
    if fast_listing:
        fast = _ListingParser(text, source).run_listing()
        if fast is not None:
            return fast
    return _Parser(text, source).run(text)
