"""The shapes of what `nft list ruleset` prints, as regular expressions, and a scan of a listing by them.

`scan` walks a listing block by block (tables, chains, sets and maps) with one regular expression per block
shape: a chain whose every line is a rule of the statement shapes below (`RULE`) is checked, counted and
left as text - the parser (`nftables/parser.py`) reads it into rules on first use with its ordinary code,
which cannot fail on these shapes; a chain with any other line is handed over to be read at once; and
anything else at the block level (an `nft -f` script, a comment, an unknown object, a brace out of place)
ends the scan (`NotAListing`), and the general parser reads the whole text.  A set's elements are checked
the same way (`ELEMENTS`).

A checked chain without a `type ... hook ...` line - nearly all of kube-proxy's ~30,000 - is not even yielded:
`scan` keeps it in its table's `ChainRecords` (its name, its position and three numbers in arrays), and the
parser builds it (`NftChain`) only when it is read.  Chains printed exactly as nft prints them are matched a
run at a time (`CHAIN_RUN`), named by one `findall` and counted with `str.count`; their numbers are found when
the first of them is built.  A listing with handles (`nft -a`) yields every chain.

The statement shapes are a subset of what the parser reads without error and without `Unmodelled`
statements (`tests/engine/test_nftables_listing.py` reads every fixture both ways and compares), written
token by token with the single spaces nft prints.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol

from meshviz.engine.nftables.vocabulary import (
    BARE_META,
    BINOPS,
    CT_KEYS,
    FIB_FLAGS,
    FIB_RESULTS,
    META_KEYS,
    PAYLOAD,
    RELATIONAL,
)


def _alt(words: Iterable[str]) -> str:
    """An alternation of words, longest first (so that `iifname` is tried before `iif`)."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w))) + ")"


# A token as the lexer reads it: a word (no white space, braces, commas, semicolons, quotes or `#`), a string.
# (ASCII text only: `scan` leaves any other to the general parser, whose `\s` also takes Unicode spaces.)
W = r'[^ \t\n\r\x0b\x0c\x1c-\x1f{},;"#]+'
S = r'"[^"\n]*"'
_END = r"(?=[ \n])"  # the token ends here
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"

# Expressions that read as a Selector without error (and without `Unmodelled`): meta, payload, conntrack, fib,
# socket and `numgen random`.
_PAYLOAD = "(?:" + "|".join(f"{re.escape(p)} {_alt(fields)}" for p, fields in PAYLOAD.items()) + ")"
SELECTOR = (
    "(?:"
    + f"{_PAYLOAD}"
    + f"|meta {_alt(META_KEYS)}"
    + f"|ct {_alt(k for k in CT_KEYS if k != 'helper')}"
    + f"|{_alt(BARE_META)}"
    + f"|ct (?:original|reply) {W}"
    + f"|fib {_alt(FIB_FLAGS)}(?: \\. {_alt(FIB_FLAGS)})* {_alt(FIB_RESULTS)}"
    + "|socket (?:transparent|mark|wildcard)"
    + "|numgen random mod [0-9]+(?: offset [0-9]+)?"
    + f"){_END}"
)
# Words that would be read as an operator, a statement or a concatenation after an expression.
_RESERVED = _alt({"set", "vmap", "map", ".", "/", *RELATIONAL, *BINOPS}) + r"(?=[ \n,])"
# Repetitions inside a statement or an element are possessive too (`*+`, `?+`): sre then keeps no state to try
# them again.  That can only make a text fail that would otherwise match, never the reverse (the chain is then read
# at once); every fixture's chains and sets are deferred as before.
_BINOP = f"(?: {_alt(BINOPS)} (?:{W}|{S}))*+"
EXPR = f"{SELECTOR}{_BINOP}(?: \\. {SELECTOR}{_BINOP})*+"
# A value as `right()` reads it: one word (not `@NAME`, which is a set), a string, or a flag list `a,b,c`.
VALUE = f"(?:[0-9]{W[:-1]}*+(?:,{W})*+|{S}|(?!{_RESERVED})(?!@){W}(?:,{W})*+)"
# A set element: key parts joined by ` . `, then `: DATA` (a verdict or a value), then element options.
_ELEMENT_WORD = f'(?:{S}|[^\\s{{}},;"#.:]{W[:-1]}*+|[.:]{W})'
_DATA = f"(?:(?:jump|goto) {W}|(?!(?:jump|goto)[\\s,}}]){_ELEMENT_WORD})"
ELEMENT = (
    f"{_ELEMENT_WORD}(?: \\. {_ELEMENT_WORD})*+(?: : {_DATA})?+"
    f"(?: (?:timeout|expires|comment|packets|bytes) (?:{W}|{S})| counter)*+"
)
# Possessive (`*+`): what follows (` }`) never starts an element, so giving one back cannot help, and sre keeps no
# backtracking state per element (a 10,000-element map took 26 MiB of it).
ELEMENTS = f"{ELEMENT}(?:,\\s*{ELEMENT})*+"
_ANON = f"\\{{ {ELEMENTS} \\}}"
_ADDR = (
    f"(?:\\[[0-9a-fA-F:.]*\\](?::{_PORT}(?:-[0-9]+)?)?|[0-9.]*:{_PORT}(?:-[0-9]+)?|[0-9.]+(?:-[0-9.]+)?"
    "|[0-9a-fA-F.]*:[0-9a-fA-F.]*:[0-9a-fA-F:.]*)"
)
_NAT_FLAGS = r"(?: (?:random|fully-random|persistent|netmap)(?:,(?:random|fully-random|persistent|netmap))*)*"
STATEMENT = (
    "(?:"
    + f"{EXPR}(?: vmap(?= [@{{])| {_alt(RELATIONAL)}(?= ))? (?:{VALUE}(?: / {VALUE})?|@{W}|{_ANON})"
    + f"|(?:jump|goto) {W}"
    + "|(?:accept|drop|return|continue)"
    + "|counter(?: (?:packets|bytes) [0-9]+)*"
    + f"|comment {S}"
    + "|notrack"
    + f"|log(?: (?:prefix|level|group|snaplen|queue-threshold) (?:{W}|{S}))*"
    + f"|(?:redirect|masquerade)(?: to :?{_PORT}(?:-[0-9]+)?)?{_NAT_FLAGS}"
    + f"|(?:dnat|snat)(?: ip| ip6)? to {_ADDR}{_NAT_FLAGS}"
    + f"|tproxy(?: ip| ip6)? to {_ADDR}"
    + f"|(?:meta mark|mark|ct mark|ct zone) set (?:meta mark|ct mark|mark|0x[0-9a-fA-F]+|[0-9]+){_END}{_BINOP}"
    + f"){_END}"
)
# Statements, each but the last followed by one space (a statement ends before a space or the line's end).
# Each statement and each line is atomic (`(?>...)`), the repetitions possessive (`++`, `*+`): a statement is
# read greedily, as the parser reads it, and a line that fails is not tried again in other ways (which would
# take exponential time on a bad line), nor is a chain's rule given back.
RULE = f"(?:(?>{STATEMENT})(?: (?=[^#\\s]))?)++"
_HANDLE = r"(?: # handle [0-9]+)?"
# A line of comments only is not a rule: `comment "..."` alone is the chain's comment, more make a rule without
# statements (an error).
_NOT_COMMENTS = f"(?!comment {S}(?: comment {S})*{_HANDLE}[ \\t]*\\n)"

# ---- blocks ----

_OPEN = r"[ \t]*\{(?:[ \t]*# handle ([0-9]+))?[ \t]*\n"
TABLE_HEAD = re.compile(f"table (ip|ip6|inet|arp|bridge|netdev) ({W}){_OPEN}")
TABLE_LINE = re.compile(f"[ \\t]*(?:comment {S}|flags {W}(?:,{W})*)[ \\t]*\\n")
BLANK = re.compile(r"(?:[ \t]*\n)+")
CLOSE = re.compile(r"[ \t]*\}[ \t]*\n")
# A base chain's first line: `type nat hook prerouting priority dstnat; policy accept;`
_SPEC = (
    f"[ \\t]*type (?:filter|nat|route) hook [a-z]+(?: device (?:{S}|[a-zA-Z0-9_.@-]+))?"
    f" priority (?:[a-z]+(?: ?[+-] ?[0-9]+)?|-?[0-9]+);(?: policy (?:accept|drop);)?[ \\t]*\\n"
)
# A chain (after any blank lines): its header, a base chain's type line, its rules if all have known shapes.
CHAIN = re.compile(
    f"(?:[ \\t]*\\n)*[ \\t]*(chain ({W})[ \\t]*\\{{(?:[ \\t]*# handle ([0-9]+))?)[ \\t]*\\n({_SPEC})?((?>[ \\t]*{_NOT_COMMENTS}{RULE}{_HANDLE}[ \\t]*\\n)*+)[ \\t]*\\}}[ \\t]*\\n"
)
CHAIN_HEAD = re.compile(f"[ \\t]*chain ({W}){_OPEN}")
# A run of chains exactly as nft prints them - tab indents, at most one empty line before each, no type line, no
# handles, every line a rule of the shapes above - matched in one go (possessive: it ends before the first chain
# that is not such).  Each is a chain CHAIN matches.  In a run, "\n\tchain " starts a header and nothing else
# (a rule line starts with two tabs, and no statement with `chain`), "\n\n" is an empty line and "\n\t}\n" ends
# a chain: its chains are counted and named with str.count and one findall, and located one by one only when one
# is built (`ChainRecords.locate`).
CHAIN_RUN = re.compile(f"(?:\\n?\\tchain {W} \\{{\\n(?:\\t\\t{_NOT_COMMENTS}{RULE}\\n)*+\\t\\}}\\n)*+")
RUN_NAMES = re.compile(f"\\n\\tchain ({W}) \\{{\\n")
RUN_HEADS = re.compile("\\n\\tchain ")
_SET_PROP = (
    f'[ \\t]*(?:(?:type|typeof) [^\\n;{{}},#"]+|flags {W}(?:,{W})*|(?:size|timeout|gc-interval|policy) {W}'
    f"|auto-merge|counter|comment {S})[ \\t]*\\n"
)
SET = re.compile(
    f"[ \\t]*(set|map) ({W}){_OPEN}((?:{_SET_PROP})*)(?:[ \\t]*elements = \\{{ ({ELEMENTS}) \\}}[ \\t]*\\n)?"
    f"[ \\t]*\\}}[ \\t]*\\n"
)
BLOCK_END = re.compile(r"^[ \t]*\}[ \t]*$", re.M)
# Each with a literal prefix, which re finds as fast as str.find.
JUMP_TARGETS = re.compile(f"jump ({W})")
GOTO_TARGETS = re.compile(f"goto ({W})")
SET_REFS = re.compile(f"@({W})")
HANDLES = re.compile(r" # handle ([0-9]+)[ \t]*\n")
# Line ends other than \n that str.splitlines (hence the lexer's line numbers) would split at, in ASCII text.
OTHER_LINE_ENDS = "\r\x0b\x0c\x1c\x1d\x1e"


class NotAListing(Exception):
    """The text is not a listing this scan reads: the general parser reads it."""


class HandleCounter(Protocol):
    """Where the next rule's handle is counted (the parser): a listing without handles numbers its rules in order."""

    next_handle: int


class ChainRecords:
    """The chains of one table, in the listing's order, by name and position.  A checked chain without a type
    line is three numbers: where its header starts (`heads`), the header's line number and its first rule's
    handle, filled in by `scan`, or for a run of chains (`add_run`) by `locate` when one of them is first built;
    its header's end and its body are found again from there (`spans`).  The other chains are yielded as `Chain`
    blocks and `add`ed by the parser (their `heads` entry is -1)."""

    __slots__ = ("first_handles", "heads", "index", "lines", "names", "rules", "runs")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}  # name -> position
        self.heads = array("q")
        self.lines = array("q")
        self.first_handles = array("q")
        self.rules = 0  # the rules of the chains kept as offsets
        # runs of chains (`CHAIN_RUN`) whose numbers are not filled in yet (their `heads` are 0): the first one's
        # position, how many, where the run starts and ends, the line it starts on and its first rule's handle
        self.runs: list[tuple[int, int, int, int, int, int]] = []

    def add_run(self, names: list[str], span: tuple[int, int], line: int, first_handle: int, rules: int) -> None:
        """Place a run of chains (`CHAIN_RUN`) by name; their numbers are filled in when one is built (`locate`)."""
        n = len(self.names)
        self.names += names
        self.index.update(zip(names, range(n, n + len(names)), strict=True))
        if len(self.index) != len(self.names):
            raise NotAListing(f"line {line}: a chain again")
        zeros = bytes(self.heads.itemsize * len(names))
        for a in (self.heads, self.lines, self.first_handles):
            a.frombytes(zeros)
        self.runs.append((n, len(names), *span, line, first_handle))
        self.rules += rules

    def locate(self, text: str) -> None:
        """Fill in the numbers of the chains of every run (where each header starts, its line, its first handle)."""
        count, index = text.count, text.index
        heads, lines, first_handles = self.heads, self.lines, self.first_handles
        for first, size, start, end, line, handle in self.runs:
            n, at = first, start
            for m in RUN_HEADS.finditer(text, start - 1, end):
                head = m.start() + 2
                line += count("\n", at, head)
                at = heads[n] = head
                lines[n] = line
                first_handles[n] = handle
                handle += count("\n", head, index("\n\t}\n", head) + 1) - 1  # its rules (lines but the header)
                n += 1
            assert n == first + size, "a run's chains were counted by their headers"
        self.runs.clear()

    def add(self, name: str, line: int) -> int:
        """Place a chain the parser reads itself; its position."""
        if name in self.index:
            raise NotAListing(f"line {line}: chain {name} again")
        n = self.index[name] = len(self.names)
        self.names.append(name)
        self.heads.append(-1)
        self.lines.append(line)
        self.first_handles.append(0)
        return n

    def spans(self, n: int, text: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """A recorded chain's header (`chain NAME {`) and body (its rule lines) in `text`: the header ends at its
        brace (a name has none), the body starts on the next line and ends at the first line that is a closing
        brace (no rule line is one)."""
        head = self.heads[n]
        head_end = text.index("{", head) + 1
        body = text.index("\n", head_end) + 1
        close = BLOCK_END.search(text, body)
        assert close is not None, "the scan matched the chain's closing brace"
        return (head, head_end), (body, close.start())


class Table(NamedTuple):
    family: str
    name: str
    handle: int | None
    line: int
    text: str  # the header line, stripped
    start: int  # where the table starts in the text
    chains: ChainRecords  # filled in as the scan reads on (complete at the table's `EndTable`)


class Chain(NamedTuple):
    name: str
    handle: int | None
    line: int
    text: str  # the header line, stripped
    spec: tuple[int, int] | None  # a base chain's `type ... priority ...;` line
    body: tuple[int, int]  # the lines between the header and the closing brace (after `spec`)
    checked: bool  # every line of the body is a rule of the statement shapes


class Set(NamedTuple):
    kind: str  # set map
    name: str
    line: int
    text: str  # the header line, stripped
    props: tuple[int, int]  # the property lines (type, flags, ...)
    elements: tuple[int, int] | None  # after `elements = {` up to and with its closing brace


class EndTable(NamedTuple):
    line: int
    end: int  # where the table ends in the text


Block = Table | Chain | Set | EndTable


def scan(text: str, handles: HandleCounter) -> Iterator[Block]:
    """The blocks of a listing, in order (`text` ends with a newline); raises NotAListing at anything else.  A
    checked chain without a type line is kept in its table's `ChainRecords`, not yielded, and its rules numbered
    from `handles.next_handle` (unless the listing shows handles: then every chain is yielded)."""
    if not text.isascii():
        raise NotAListing("not ASCII")
    if any(c in text for c in OTHER_LINE_ENDS):
        raise NotAListing("line ends other than \\n")
    record = "# handle" not in text  # no handles anywhere: chains are numbered in order
    pos, line, n = 0, 1, len(text)
    count = text.count
    chain_match, run_match, run_names = CHAIN.match, CHAIN_RUN.match, RUN_NAMES.findall
    while pos < n:
        m = BLANK.match(text, pos)
        if m:
            line += count("\n", pos, m.end())
            pos = m.end()
            continue
        m = TABLE_HEAD.match(text, pos)
        if not m:
            raise NotAListing(f"line {line}: not a table")
        handle = m.group(3)
        records = ChainRecords()
        yield Table(
            m.group(1), m.group(2), int(handle) if handle else None, line, text[pos : m.end()].strip(), pos, records
        )
        index, names = records.index, records.names
        heads, lines, first_handles = records.heads, records.lines, records.first_handles
        line += 1
        pos = m.end()
        while True:
            if pos >= n:
                raise NotAListing("a table without its closing brace")
            if record:
                r = run_match(text, pos)  # it may match nothing, never fails
                run_end = r.end() if r else pos
                if run_end > pos:  # a run of chains as nft prints them
                    found = run_names(text, pos - 1, run_end)  # pos starts a line: text[pos - 1] is its line end
                    newlines = count("\n", pos, run_end)
                    size = newlines - 2 * len(found) - count("\n\n", pos - 1, run_end)  # not headers, braces, blanks
                    records.add_run(found, (pos, run_end), line, handles.next_handle, size)
                    handles.next_handle += size
                    line += newlines
                    pos = run_end
                    continue
            c = chain_match(text, pos)
            if c:
                head = c.start(1)
                line += count("\n", pos, head)
                if record and c.start(4) < 0:  # checked, no type line: offsets only
                    name = c.group(2)
                    if name in index:
                        raise NotAListing(f"line {line}: chain {name} again")
                    pos = c.end()
                    size = count("\n", head, pos) - 2  # the lines but the header and the closing brace
                    index[name] = len(names)
                    names.append(name)
                    heads.append(head)
                    lines.append(line)
                    first_handles.append(handles.next_handle)
                    handles.next_handle += size
                    records.rules += size
                    line += size + 2
                    continue
                header, name, handle = c.group(1, 2, 3)
                yield Chain(
                    name,
                    int(handle) if handle else None,
                    line,
                    header,
                    c.span(4) if c.start(4) >= 0 else None,
                    c.span(5),
                    True,
                )
                line += count("\n", head, c.end())
                pos = c.end()
                continue
            m = BLANK.match(text, pos) or TABLE_LINE.match(text, pos)
            if m:
                line += count("\n", pos, m.end())
                pos = m.end()
                continue
            m = CLOSE.match(text, pos)
            if m:
                yield EndTable(line, m.end())
                line += 1
                pos = m.end()
                break
            m = SET.match(text, pos)
            if m:
                head_end = m.start(4)
                yield Set(
                    m.group(1),
                    m.group(2),
                    line,
                    text[pos:head_end].strip(),
                    m.span(4),
                    (m.start(5), text.index("}", m.end(5)) + 1) if m.start(5) >= 0 else None,
                )
                line += count("\n", pos, m.end())
                pos = m.end()
                continue
            m = CHAIN_HEAD.match(text, pos)
            if not m:
                raise NotAListing(f"line {line}: not a chain, set or map")
            end = BLOCK_END.search(text, m.end())
            if end is None:
                raise NotAListing(f"line {line}: a chain without its closing brace")
            handle = m.group(2)
            yield Chain(
                m.group(1),
                int(handle) if handle else None,
                line,
                text[pos : m.end()].strip(),
                None,
                (m.end(), end.start()),
                False,
            )
            line += count("\n", pos, end.end()) + 1
            pos = end.end() + 1
    return
