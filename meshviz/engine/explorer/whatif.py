"""What-if editing: change the evidence in a scratch copy and re-trace every connection.

    edits = [Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=1, rule="-p tcp --dport 22 -j RETURN")]
    result = whatif(ev, connections, edits)
    result.diff        # per connection: the verdict before and after
    result.patch       # unified diffs of the changed evidence texts (a/iptables-save -> b/iptables-save ...)

The scratch copy is an `Evidence` (texts): every edit rewrites the texts, so the result is always something a user
could have uploaded.  Rule edits (insert, replace, delete, move) touch only the lines of the rule concerned, in the
style of the neighbouring lines (`-A CHAIN ...` in iptables-save output, `iptables -t nat -A ...` for commands);
every other line stays byte-identical.  When the rule's line cannot be edited in place (it is an `-I CHAIN N` line of
a restore payload, a comma list expanded into several rules, ...) the edit is written as an `-I`/`-D`/`-R` command at
the end of that table's block, which iptables-restore applies in order.  Either way the edited text is parsed again
and the chain must hold exactly the expected rules; otherwise the edit is refused with an error.

Edits are validated one by one: a bad rule text gives a `ParseError` whose source is `edit N` (1-based), with the
column inside the rule text and the rule text itself; an out-of-range index, an unknown chain, listener or cluster is
an error too, never a guess.  A failing edit is skipped (the others still apply) and `whatif` does not re-trace
while any edit failed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, cast, get_args

from meshviz.engine.core.errors import EngineInputError, ParseError
from meshviz.engine.core.model import Family
from meshviz.engine.envoy.patch import _key, iter_listeners, set_original_src
from meshviz.engine.netfilter.model import BUILTIN_CHAINS, Rule, Ruleset
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables
from meshviz.engine.netfilter.render import render_rule
from meshviz.engine.pipeline.evidence import Evidence, connection_story, verdict_line
from meshviz.engine.routing.defaults import default_policy_rules
from meshviz.engine.routing.flow import render_rule as render_rule_text
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.story.model import Story, changed_fields

Op = Literal[
    "insert",
    "replace",
    "delete",
    "move",
    "set_text",
    "append_text",
    "sysctl",
    "envoy_bind",
    "envoy_original_src",
]
OPS: tuple[str, ...] = get_args(Op)
TEXT_KINDS = ("iptables", "ip_rule", "ip_route", "sysctl", "envoy")
#: Evidence field -> the file name used in patches and error sources.
FILE_NAMES = {
    "iptables": "iptables-save",
    "ip_rule": "ip-rule",
    "ip_route": "ip-route",
    "sysctl": "sysctl",
    "envoy": "envoy-config-dump.json",
}
_INT_FIELDS = ("index", "to_index", "mark")
_STR_FIELDS = ("table", "chain", "rule", "kind", "text", "key", "value", "address", "listener", "cluster", "family")


@dataclass(frozen=True)
class Edit:
    """One what-if edit (JSON: `Edit.from_dict` / `to_dict`).

    Rule edits: `table`, `chain`, `index` (1-based), `to_index` (move: the rule's position afterwards), `rule` (save
    syntax, with or without the leading `-A CHAIN`), `family` ("ipv4"/"ipv6"; default: the pod IP's family).
    `set_text` / `append_text`: `kind` (iptables, ip_rule, ip_route, sysctl, envoy) and `text`.  `sysctl`: `key`,
    `value`.  `envoy_bind`: `address` ("" removes the bind) on `cluster` (default: every inbound cluster,
    `inbound|*` and `InboundPassthroughCluster*`).  `envoy_original_src`: `mark` (None removes the filter) on
    `listener` (default virtualInbound).
    """

    op: Op
    table: str | None = None
    chain: str | None = None
    index: int | None = None
    to_index: int | None = None
    rule: str | None = None
    kind: str | None = None
    text: str | None = None
    key: str | None = None
    value: str | None = None
    address: str | None = None
    mark: int | None = None
    listener: str | None = None
    cluster: str | None = None
    family: str | None = None

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Edit:
        """An edit from JSON; raises ValueError naming the bad field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"an edit must be an object, not {type(d).__name__}")
        op = d.get("op")
        if op not in OPS:
            raise ValueError(f"unknown edit op {op!r} (one of {', '.join(OPS)})")
        unknown = set(d) - {"op", *_INT_FIELDS, *_STR_FIELDS}
        if unknown:
            raise ValueError(f"unknown edit field(s): {', '.join(sorted(unknown))}")
        kw: dict[str, Any] = {}
        for f in _INT_FIELDS:
            v = d.get(f)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | str):
                raise ValueError(f"{f} must be an integer, not {v!r}")
            try:
                kw[f] = int(v, 0) if isinstance(v, str) else v
            except ValueError as e:
                raise ValueError(f"{f} must be an integer, not {v!r}") from e
        for f in _STR_FIELDS:
            v = d.get(f)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise ValueError(f"{f} must be a string, not {v!r}")
            kw[f] = str(v)
        return Edit(op=cast(Op, op), **kw)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        for f in (*_STR_FIELDS, *_INT_FIELDS):
            v = getattr(self, f)
            if v is not None:
                out[f] = v
        if self.op == "envoy_original_src" and "mark" not in out:
            out["mark"] = None
        return out

    def describe(self) -> str:
        where = f"{self.table}/{self.chain}" if self.table or self.chain else ""
        if self.op in ("insert", "replace", "delete"):
            return f"{self.op} {where} #{self.index}" + (f": {self.rule}" if self.rule else "")
        if self.op == "move":
            return f"move {where} #{self.index} to #{self.to_index}"
        if self.op in ("set_text", "append_text"):
            return f"{self.op} {self.kind}"
        if self.op == "sysctl":
            return f"sysctl {self.key} = {self.value}"
        if self.op == "envoy_bind":
            return f"envoy upstream bind {self.address or '(none)'} on {self.cluster or 'inbound clusters'}"
        return f"envoy original_src mark {self.mark} on {self.listener or 'virtualInbound'}"


def parse_edits(items: Sequence[Any]) -> tuple[list[Edit], list[ParseError]]:
    """Edits from JSON; every bad one is a ParseError with source `edit N`."""
    edits: list[Edit] = []
    errors: list[ParseError] = []
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        return [], [ParseError("edits", 0, 0, "", "edits must be a list of objects")]
    for n, item in enumerate(items, 1):
        try:
            edits.append(Edit.from_dict(item))
        except ValueError as e:
            errors.append(ParseError(f"edit {n}", 0, 0, json.dumps(item, default=str)[:400], str(e)))
    return edits, errors


@dataclass(frozen=True)
class EditResult:
    evidence: Evidence
    errors: tuple[ParseError, ...] = ()
    #: One line per applied edit saying what changed (e.g. "mangle/ISTIO_INBOUND: rule 3 deleted (line 14)").
    changes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class _EditFailed(Exception):
    def __init__(self, errors: list[ParseError]):
        super().__init__(errors[0].message if errors else "edit failed")
        self.errors = errors


# --------------------------------------------------------------------------
# iptables text surgery
# --------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _parsed(text: str) -> IptablesParseResult:
    return parse_iptables(text, source=FILE_NAMES["iptables"])


_RULE_LINE = re.compile(
    r"^(?P<pre>\s*(?:\[\d+:\d+\]\s*)?(?:\S*ip6?tables\S*\s+(?:(?:-t\s*|--table[= ])\S+\s+)?)?)"
    r"(?P<cmd>-A|--append|-I|--insert)\s+(?P<chain>\S+)(?:\s+(?P<num>\d+))?(?P<sep>\s+)(?P<body>.*?)\s*$"
)
_COUNTERS = re.compile(r"^\s*\[\d+:\d+\]\s*")
_PREFIX = re.compile(r"^\s*(?:-A|--append)\s+(\S+)\s+")


def _err(n: int, message: str, text: str = "", line: int = 0, column: int = 0) -> _EditFailed:
    return _EditFailed([ParseError(f"edit {n}", line, column, text, message)])


def _family(ev: Evidence, edit: Edit, n: int) -> Family:
    if edit.family:
        try:
            return Family(edit.family)
        except ValueError as e:
            raise _err(n, f"unknown family {edit.family!r} (ipv4 or ipv6)", edit.family) from e
    try:
        return Family.IPV6 if ipaddress.ip_address(ev.pod_ip or "").version == 6 else Family.IPV4
    except ValueError:
        return Family.IPV4


def _ruleset(text: str, fam: Family, n: int) -> Ruleset:
    parsed = _parsed(text)
    if parsed.errors:
        e = parsed.errors[0]
        raise _EditFailed([ParseError(e.source, e.line, e.column, e.text, f"the rules do not parse: {e.message}")])
    rs = parsed.ruleset(fam)
    if rs is None:
        raise _err(n, f"the iptables evidence has no {fam} rules")
    return rs


def _rule_body(n: int, text: str | None, chain: str) -> tuple[str, int]:
    """The rule spec without `-A CHAIN`, and its offset in the user's text."""
    if text is None or not text.strip():
        raise _err(n, "the edit needs a rule (e.g. `-p tcp --dport 22 -j RETURN`)", text or "", 1, 1)
    if "\n" in text.strip():
        raise _err(n, "one rule per edit: the rule text has several lines", text, 1, text.index("\n") + 1)
    stripped = _COUNTERS.sub("", text)
    offset = len(text) - len(stripped)
    m = _PREFIX.match(stripped)
    if m is not None:
        if m.group(1) != chain:
            raise _err(
                n,
                f"the rule is for chain {m.group(1)}, but the edit is for chain {chain}",
                text,
                1,
                offset + m.start(1) + 1,
            )
        offset += m.end()
        stripped = stripped[m.end() :]
    body = stripped.rstrip()
    lead = len(body) - len(body.lstrip())
    if stripped.lstrip().startswith(("-I ", "--insert ", "-R ", "-D ")):
        raise _err(n, "give the rule itself (optionally with `-A CHAIN`), not an -I/-R/-D command", text, 1, offset + 1)
    return body.lstrip(), offset + lead


def _chain_decl_lines(rs: Ruleset, table: str) -> list[str]:
    t = rs.table(table)
    out = []
    for c in t.chains if t is not None else ():
        builtin = c.builtin or c.name in BUILTIN_CHAINS.get(table, ())
        out.append(f":{c.name} {c.policy or 'ACCEPT'} [0:0]" if builtin else f":{c.name} - [0:0]")
    return out


def _parse_rule(n: int, rs: Ruleset, table: str, chain: str, text: str | None) -> tuple[str, list[Rule], int]:
    """Parse the user's rule in the context of the table (its chains exist); errors point into the user's text."""
    body, offset = _rule_body(n, text, chain)
    assert text is not None
    decls = _chain_decl_lines(rs, table)
    prefix = f"-A {chain} "
    mini = "\n".join([f"*{table}", *decls, prefix + body, "COMMIT", ""])
    rule_line = len(decls) + 2
    r = parse_iptables(mini, source=f"edit {n}", family=rs.family)
    errs = [e for e in r.errors if e.line == rule_line]
    if errs:
        out = []
        for e in errs:
            col = offset + max(e.column - len(prefix), 1)
            out.append(ParseError(f"edit {n}", 1, col, text, e.message))
        raise _EditFailed(out)
    if r.errors:
        e = r.errors[0]
        raise _err(n, e.message, text, 1, 1)
    parsed = r.ruleset(rs.family)
    t = parsed.table(table) if parsed is not None else None
    c = t.chain(chain) if t is not None else None
    if c is None or not c.rules:
        raise _err(n, "the rule text holds no rule", text, 1, 1)
    return body, list(c.rules), offset


def _rendered(rules: Sequence[Rule]) -> list[str]:
    return [render_rule(r) for r in rules]


def _chain_rules(text: str, fam: Family, table: str, chain: str) -> list[Rule] | None:
    parsed = _parsed(text)
    rs = parsed.ruleset(fam)
    t = rs.table(table) if rs is not None else None
    c = t.chain(chain) if t is not None else None
    return list(c.rules) if c is not None else None


def _others(text: str, fam: Family, table: str, chain: str) -> list[tuple[str, str, str, list[str]]]:
    parsed = _parsed(text)
    return [
        (str(rs.family), t.name, c.name, _rendered(c.rules))
        for rs in parsed.rulesets
        for t in rs.tables
        for c in t.chains
        if not (rs.family == fam and t.name == table and c.name == chain)
    ]


def _lines_of(rs: Ruleset, line: int) -> int:
    """How many rules of the ruleset come from that input line (comma lists expand into several)."""
    return sum(1 for t in rs.tables for c in t.chains for r in c.rules if r.ref is not None and r.ref.line == line)


def _table_block_end(lines: list[str], rs: Ruleset, table: str) -> int | None:
    """0-based index of the COMMIT line closing the block of that table (None: commands format)."""
    t = rs.table(table)
    if t is None:
        return None
    refs = [c.ref.line for c in t.chains if c.ref is not None]
    refs += [r.ref.line for c in t.chains for r in c.rules if r.ref is not None]
    if not refs:
        return None
    last = max(refs) - 1
    if not any(ln.lstrip().startswith("*") for ln in lines[: last + 1]):
        return None
    for i in range(last + 1, len(lines)):
        if lines[i].strip() == "COMMIT":
            return i
    return None


def _command_prefix(lines: list[str], rs: Ruleset, table: str) -> str:
    """For the commands format: `iptables -t nat ` as a neighbouring rule line writes it."""
    t = rs.table(table)
    for c in t.chains if t is not None else ():
        for r in c.rules:
            if r.ref is not None:
                m = _RULE_LINE.match(lines[r.ref.line - 1])
                if m is not None:
                    return _COUNTERS.sub("", m.group("pre"))
    prog = "ip6tables" if rs.family == Family.IPV6 else "iptables"
    return f"{prog} -t {table} "


class _Surgery:
    """One iptables rule edit on the text, verified by parsing the result."""

    def __init__(self, ev: Evidence, edit: Edit, n: int):
        self.n = n
        self.edit = edit
        self.text = ev.iptables
        if not edit.table or not edit.chain:
            raise _err(n, f"{edit.op} needs a table and a chain")
        self.table, self.chain = edit.table, edit.chain
        self.fam = _family(ev, edit, n)
        self.rs = _ruleset(self.text, self.fam, n)
        t = self.rs.table(self.table)
        c = t.chain(self.chain) if t is not None else None
        if c is None:
            have = ", ".join(x.name for x in t.chains) if t is not None else ""
            where = f" (it has {have})" if have else f" (the {self.fam} rules have no {self.table} table)"
            raise _err(n, f"no chain {self.chain} in table {self.table}{where}", f"{self.table}/{self.chain}")
        self.rules = list(c.rules)
        self.lines = self.text.split("\n")

    # ---- helpers ----

    def check_index(self, index: int | None, what: str, allow_end: bool = False) -> int:
        n_rules = len(self.rules)
        top = n_rules + 1 if allow_end else n_rules
        if index is None:
            raise _err(self.n, f"{what} is missing")
        if not 1 <= index <= top:
            span = f"1-{top}" if top else "none: the chain is empty"
            raise _err(
                self.n,
                f"{what} {index} is out of range: {self.table}/{self.chain} ({self.fam}) has {n_rules} rule"
                f"{'s' if n_rules != 1 else ''} (valid: {span})",
                str(index),
            )
        return index

    def verify(
        self, text: str, expected: list[str], new_lines: set[int], user: tuple[str, str, int] | None
    ) -> list[ParseError]:
        """Parse `text`; errors on the new lines are the edit's (with the column in the user's rule text), other
        errors or a wrong chain fail it.  `user` is (rule text, rule body, the body's offset in the rule text)."""
        parsed = _parsed(text)
        errs: list[ParseError] = []
        for e in parsed.errors:
            if e.line in new_lines and user is not None:
                rule_text, body, offset = user
                line = text.split("\n")[e.line - 1]
                pos = line.find(body)
                col = offset + (e.column - 1 - pos) + 1 if pos >= 0 and e.column - 1 >= pos else 1
                errs.append(ParseError(f"edit {self.n}", 1, col, rule_text, e.message))
            else:
                errs.append(ParseError(f"edit {self.n}", 0, 0, e.text, f"the edited rules do not parse: {e.message}"))
        if errs:
            return errs
        got = _chain_rules(text, self.fam, self.table, self.chain)
        if got is None or _rendered(got) != expected:
            return [
                ParseError(f"edit {self.n}", 0, 0, "", "internal: the edited text does not give the expected chain")
            ]
        if _others(text, self.fam, self.table, self.chain) != _others(self.text, self.fam, self.table, self.chain):
            return [ParseError(f"edit {self.n}", 0, 0, "", "internal: the edit changed another chain")]
        return []

    def attempt(
        self, candidates: list[tuple[list[str], set[int]]], expected: list[str], user: tuple[str, str, int] | None
    ) -> str:
        errors: list[ParseError] = []
        for lines, new in candidates:
            text = "\n".join(lines)
            errs = self.verify(text, expected, new, user)
            if not errs:
                return text
            if any(e.line for e in errs):  # a real problem of the user's rule: report it
                raise _EditFailed(errs)
            errors = errs
        raise _EditFailed(errors or [ParseError(f"edit {self.n}", 0, 0, "", "the edit could not be applied")])

    def append_line(self, lines: list[str], command: str) -> tuple[list[str], set[int]]:
        """Add an iptables-restore command (`-I CHAIN 2 ...`) at the end of the table's block, or as a command."""
        end = _table_block_end(lines, self.rs, self.table)
        if end is not None:
            out = [*lines[:end], command, *lines[end:]]
            return out, {end + 1}
        prefix = _command_prefix(lines, self.rs, self.table)
        out = list(lines)
        tail: list[str] = []
        while out and out[-1] == "":
            tail.append(out.pop())
        out.append(prefix + command)
        return [*out, *tail], {len(out)}

    def _style(self, line_no: int) -> re.Match[str] | None:
        m = _RULE_LINE.match(self.lines[line_no - 1])
        if m is None or m.group("chain") != self.chain:
            return None
        return m

    def _single(self, rule: Rule) -> int | None:
        """The 1-based line of a rule that is alone on its `-A` line, else None."""
        if rule.ref is None or _lines_of(self.rs, rule.ref.line) != 1:
            return None
        return rule.ref.line

    def _append_style_line(self, body: str, like: int | None) -> str:
        pre = ""
        if like is not None:
            m = _RULE_LINE.match(self.lines[like - 1])
            if m is not None:
                pre = _COUNTERS.sub("", m.group("pre"))
        return f"{pre}-A {self.chain} {body}"

    # ---- operations ----

    def delete_text(self, index: int) -> tuple[str, str]:
        """Delete rule `index`; returns (new text, what changed)."""
        rule = self.rules[index - 1]
        expected = _rendered(self.rules[: index - 1] + self.rules[index:])
        candidates: list[tuple[list[str], set[int]]] = []
        line = self._single(rule)
        if line is not None and self._style(line) is not None:
            candidates.append(([*self.lines[: line - 1], *self.lines[line:]], set()))
        candidates.append(self.append_line(self.lines, f"-D {self.chain} {index}"))
        text = self.attempt(candidates, expected, None)
        return text, f"{self.table}/{self.chain}: rule {index} deleted ({render_rule(rule)})"

    def insert_text(
        self, index: int, body: str, new_rules: list[Rule], user: tuple[str, str, int] | None
    ) -> tuple[str, str]:
        expected = _rendered(self.rules[: index - 1] + new_rules + self.rules[index - 1 :])
        candidates: list[tuple[list[str], set[int]]] = []
        if index <= len(self.rules):
            ref = self.rules[index - 1]
            line = self._single(ref)
            m = self._style(line) if line is not None else None
            if line is not None and m is not None and m.group("cmd") in ("-A", "--append"):
                new = self._append_style_line(body, line)
                candidates.append(([*self.lines[: line - 1], new, *self.lines[line - 1 :]], {line}))
        elif self.rules:
            line = self._single(self.rules[-1])
            m = self._style(line) if line is not None else None
            if line is not None and m is not None and m.group("cmd") in ("-A", "--append"):
                new = self._append_style_line(body, line)
                candidates.append(([*self.lines[:line], new, *self.lines[line:]], {line + 1}))
        if index > len(self.rules):
            candidates.append(self.append_line(self.lines, f"-A {self.chain} {body}"))
        else:
            candidates.append(self.append_line(self.lines, f"-I {self.chain} {index} {body}"))
        text = self.attempt(candidates, expected, user)
        return text, f"{self.table}/{self.chain}: rule inserted at {index} ({'; '.join(_rendered(new_rules))})"

    def replace_text(
        self, index: int, body: str, new_rules: list[Rule], user: tuple[str, str, int] | None
    ) -> tuple[str, str]:
        old = self.rules[index - 1]
        expected = _rendered(self.rules[: index - 1] + new_rules + self.rules[index:])
        candidates: list[tuple[list[str], set[int]]] = []
        line = self._single(old)
        m = self._style(line) if line is not None else None
        if line is not None and m is not None:
            pre = _COUNTERS.sub("", m.group("pre"))
            num = f" {m.group('num')}" if m.group("num") else ""
            new = f"{pre}{m.group('cmd')} {self.chain}{num} {body}"
            candidates.append(([*self.lines[: line - 1], new, *self.lines[line:]], {line}))
        if len(new_rules) == 1:
            candidates.append(self.append_line(self.lines, f"-R {self.chain} {index} {body}"))
        text = self.attempt(candidates, expected, user)
        return text, f"{self.table}/{self.chain}: rule {index} replaced ({render_rule(old)} -> {body})"


def _body_of(rule: Rule) -> str:
    return render_rule(rule).split(" ", 2)[2] if render_rule(rule).count(" ") >= 2 else ""


def _rule_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    s = _Surgery(ev, edit, n)
    if edit.op == "delete":
        text, change = s.delete_text(s.check_index(edit.index, "index"))
        return replace(ev, iptables=text), change
    if edit.op == "insert":
        index = s.check_index(edit.index if edit.index is not None else len(s.rules) + 1, "index", allow_end=True)
        body, rules, offset = _parse_rule(n, s.rs, s.table, s.chain, edit.rule)
        text, change = s.insert_text(index, body, rules, (edit.rule or "", body, offset))
        return replace(ev, iptables=text), change
    if edit.op == "replace":
        index = s.check_index(edit.index, "index")
        body, rules, offset = _parse_rule(n, s.rs, s.table, s.chain, edit.rule)
        text, change = s.replace_text(index, body, rules, (edit.rule or "", body, offset))
        return replace(ev, iptables=text), change
    # move: delete, then insert the same rule at its new position
    index = s.check_index(edit.index, "index")
    to = s.check_index(edit.to_index, "to_index")
    if to == index:
        return ev, f"{s.table}/{s.chain}: rule {index} stays at {to}"
    rule = s.rules[index - 1]
    line = s._single(rule)
    m = s._style(line) if line is not None else None
    body = m.group("body") if m is not None else _body_of(rule)
    expected = s.rules[: index - 1] + s.rules[index:]
    expected.insert(to - 1, rule)
    text, _ = s.delete_text(index)
    s2 = _Surgery(replace(ev, iptables=text), edit, n)
    text2, _ = s2.insert_text(to, body, [rule], None)
    got = _chain_rules(text2, s.fam, s.table, s.chain)
    if got is None or _rendered(got) != _rendered(expected):
        raise _err(n, "internal: the move did not give the expected order")
    return replace(ev, iptables=text2), f"{s.table}/{s.chain}: rule {index} moved to {to} ({render_rule(rule)})"


# --------------------------------------------------------------------------
# Other evidence
# --------------------------------------------------------------------------


def _check_text(kind: str, text: str, n: int, ev: Evidence) -> list[ParseError]:
    """Parse a whole evidence text; its errors, re-sourced as `edit N (file)`."""
    source = f"edit {n} ({FILE_NAMES[kind]})"
    errors: tuple[ParseError, ...]
    if kind == "iptables":
        errors = parse_iptables(text, source=source).errors
    elif kind == "ip_rule":
        errors = parse_ip_rules(text, source=source).errors
    elif kind == "ip_route":
        errors = parse_ip_routes(text, source=source).errors
    elif kind == "sysctl":
        errors = parse_sysctls(text, source=source).errors
    else:
        from meshviz.engine.envoy.parser import parse_config_dump

        errors = parse_config_dump(text, source=source).errors
    return list(errors)


def _text_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    kind = edit.kind
    if kind not in TEXT_KINDS:
        raise _err(n, f"unknown kind {kind!r} (one of {', '.join(TEXT_KINDS)})", str(kind))
    assert kind is not None
    if edit.text is None:
        raise _err(n, f"{edit.op} needs a text")
    old = getattr(ev, kind) or ""
    assumed = ""
    if edit.op == "append_text" and not old.strip() and kind == "ip_rule":
        # never uploaded: the engine assumed the kernel's default rules; appending adds to them (a listing of one
        # rule alone would replace them and leave nothing sending traffic to the local and main tables)
        old = assumed = "".join(render_rule_text(r) + "\n" for r in default_policy_rules(Family.IPV4))
    if edit.op == "set_text":
        new = edit.text
    else:
        addition = edit.text if edit.text.endswith("\n") else edit.text + "\n"
        new = (old if not old or old.endswith("\n") else old + "\n") + addition
    if kind == "iptables" and not new.strip():
        raise _err(n, "the iptables evidence cannot be empty")
    errors = _check_text(kind, new, n, ev) if new.strip() else []
    if errors:
        raise _EditFailed(errors)
    value: str | None = new if (new.strip() or kind == "iptables") else None
    what = "replaced" if edit.op == "set_text" else "extended"
    if assumed:
        what += " (it was not uploaded: the kernel's default rules it assumed, plus the new lines)"
    fields: dict[str, Any] = {kind: value}
    return replace(ev, **fields), f"{FILE_NAMES[kind]} {what}"


_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+-]*")


def _sysctl_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    key = (edit.key or "").strip()
    value = (edit.value or "").strip()
    if not _SYSCTL_KEY.fullmatch(key):
        raise _err(n, f"not a sysctl key: {key!r}", key, 1, 1)
    if not value or "\n" in value:
        raise _err(n, f"the sysctl {key} needs a one-line value", value, 1, 1)
    old = ev.sysctl or ""
    lines = old.split("\n")
    pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)(.*?)(\s*)$")
    found = False
    for i, ln in enumerate(lines):
        m = pattern.match(ln)
        if m is not None:
            lines[i] = f"{m.group(1)}{value}{m.group(3)}"
            found = True
    if found:
        new = "\n".join(lines)
    else:
        new = (old if not old or old.endswith("\n") else old + "\n") + f"{key} = {value}\n"
    errors = _check_text("sysctl", new, n, ev)
    if errors:
        raise _EditFailed(errors)
    return replace(ev, sysctl=new), f"sysctl {key} = {value}"


_CLUSTER_KEYS = {
    "connect_timeout",
    "connectTimeout",
    "type",
    "lb_policy",
    "lbPolicy",
    "cluster_type",
    "clusterType",
    "eds_cluster_config",
    "edsClusterConfig",
    "load_assignment",
    "loadAssignment",
}


def _iter_clusters(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        if "name" in obj and obj.keys() & _CLUSTER_KEYS and not obj.keys() & {"filter_chains", "filterChains"}:
            yield obj
            return
        for k, v in obj.items():
            if k in ("error_state", "errorState"):
                continue
            yield from _iter_clusters(v)
    elif isinstance(obj, list):
        for item in obj:
            yield from _iter_clusters(item)


def _dump_like(original: str, obj: Any) -> str:
    """JSON text in the original's layout (indent width, ASCII escaping, final newline)."""
    m = re.match(r"[\[{]\r?\n( +|\t)", original)
    indent: int | str | None = None
    if m is not None:
        indent = "\t" if m.group(1) == "\t" else len(m.group(1))
    ascii_only = original.isascii()
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only)
    return text + ("\n" if original.endswith("\n") else "")


def _envoy_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    if not ev.envoy:
        raise _err(n, "there is no Envoy config dump to edit")
    try:
        dump = json.loads(ev.envoy)
    except ValueError as e:
        raise _err(n, f"the Envoy config dump is not JSON: {e}") from e
    changes: list[str] = []
    if edit.op == "envoy_original_src":
        listener = edit.listener or "virtualInbound"
        names = {str(lst.get("name")) for lst in iter_listeners(dump)}
        if listener not in names and not any(x.startswith(listener) for x in names if listener == "virtualInbound"):
            raise _err(n, f"no listener {listener!r} in the Envoy config (it has {', '.join(sorted(names))})", listener)
        if edit.mark is not None and not 0 <= edit.mark <= 0xFFFFFFFF:
            raise _err(n, f"the mark must be a 32-bit unsigned integer, not {edit.mark}", str(edit.mark))
        set_original_src(dump, (listener,), edit.mark, changes)
    else:
        address = (edit.address or "").strip()
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError as e:
                raise _err(n, f"not an IP address: {address!r}", address, 1, 1) from e
        clusters = list(_iter_clusters(dump))
        if edit.cluster:
            chosen = [c for c in clusters if c.get("name") == edit.cluster]
            if not chosen:
                raise _err(n, f"no cluster {edit.cluster!r} in the Envoy config", edit.cluster)
        else:
            chosen = [
                c for c in clusters if str(c.get("name", "")).startswith(("inbound|", "InboundPassthroughCluster"))
            ]
            if not chosen:
                raise _err(n, "the Envoy config has no inbound clusters (name one with `cluster`)")
        for c in chosen:
            k = _key(c, "upstream_bind_config")
            bind = c.get(k)
            if not address:
                if isinstance(bind, dict):
                    sk = _key(bind, "source_address")
                    if sk in bind:
                        del bind[sk]
                        changes.append(f"cluster {c.get('name')}: upstream bind address removed")
                    if not bind:
                        del c[k]
                continue
            if not isinstance(bind, dict):
                bind = c[k] = {}
            sk = _key(bind, "source_address")
            sa = bind.get(sk) if isinstance(bind.get(sk), dict) else None
            if sa is None:
                sa = bind[sk] = {"address": address, _key(c, "port_value"): 0}
                changes.append(f"cluster {c.get('name')}: upstream bind address {address}")
            elif sa.get("address") != address:
                sa["address"] = address
                changes.append(f"cluster {c.get('name')}: upstream bind address set to {address}")
    if not changes:
        return ev, f"{edit.describe()}: already so, nothing changed"
    text = _dump_like(ev.envoy, dump)
    errors = _check_text("envoy", text, n, ev)
    if errors:
        raise _EditFailed(errors)
    return replace(ev, envoy=text), "; ".join(changes)


def apply_edits(ev: Evidence, edits: Sequence[Edit]) -> EditResult:
    """Apply the edits in order to a copy of the evidence; a failing edit is skipped and reported."""
    errors: list[ParseError] = []
    changes: list[str] = []
    current = ev
    for n, edit in enumerate(edits, 1):
        try:
            if edit.op in ("insert", "replace", "delete", "move"):
                current, change = _rule_edit(current, edit, n)
            elif edit.op in ("set_text", "append_text"):
                current, change = _text_edit(current, edit, n)
            elif edit.op == "sysctl":
                current, change = _sysctl_edit(current, edit, n)
            elif edit.op in ("envoy_bind", "envoy_original_src"):
                current, change = _envoy_edit(current, edit, n)
            else:
                raise _err(n, f"unknown edit op {edit.op!r} (one of {', '.join(OPS)})", str(edit.op))
            changes.append(change)
        except _EditFailed as e:
            errors.extend(e.errors)
    return EditResult(current, tuple(errors), tuple(changes))


# --------------------------------------------------------------------------
# Re-tracing and verdicts
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _cached_story(ev: Evidence, key: tuple[tuple[str, Any], ...]) -> Story:
    return connection_story(ev, dict(key))


def _conn_key(conn: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), v if isinstance(v, int | str) else str(v)) for k, v in conn.items()))


def retrace(ev: Evidence, connections: Sequence[Mapping[str, Any]]) -> list[Story]:
    """Every connection's story on this evidence (stored shape, see `evidence.connection_story`).

    Raises EngineInputError when the evidence does not parse and ValueError for a malformed connection.
    Stories are cached per (evidence, connection), so re-tracing unchanged evidence is free.
    """
    return [_cached_story(ev, _conn_key(c)) for c in connections]


def stored(stories: Sequence[Story], connections: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stories in the stored shape (`Story.to_dict()` plus "connection" and "verdict_line")."""
    return [
        {"connection": dict(c), "verdict_line": verdict_line(s), **s.to_dict()}
        for s, c in zip(stories, connections, strict=True)
    ]


#: The connections analysed by default (as meshviz.analyses.services does): a representative client to each
#: application port and the application opening one outbound connection; nothing is dialled.
DEFAULT_CLIENT = "10.255.0.1:40000"
DEFAULT_OUTBOUND_DST = "203.0.113.10:443"
DEFAULT_APP_UID = 1000
DEFAULT_APP_GID = 1000
DEFAULT_APP_PORT = 8080
MAX_DEFAULT_INBOUND = 16


def inbound_cluster_ports(envoy: str | None) -> list[int]:
    """The ports of the dump's inbound clusters (`inbound|PORT|...`), in order."""
    if not envoy:
        return []
    from meshviz.engine.envoy.parser import parse_config_dump

    ports: list[int] = []
    for cluster in parse_config_dump(envoy, source=FILE_NAMES["envoy"]).config.clusters:
        parts = cluster.name.split("|")
        if parts[0] == "inbound" and len(parts) > 1 and parts[1].isdigit():
            port = int(parts[1])
            if 0 < port < 65536 and port not in ports:
                ports.append(port)
    return ports


def default_connections(ev: Evidence) -> list[dict[str, Any]]:
    """One inbound connection per application port (`app_ports`, else the dump's inbound clusters, else 8080) and
    one outbound connection, in the stored shape (mirrors meshviz.analyses.services.default_connections)."""
    from meshviz.engine.evidence.podspec import ISTIO_PORT_RANGE
    from meshviz.engine.pipeline.evidence import identity_of

    # The application's ports: given, else the dump's INCLUDE_INBOUND_PORTS / POD_PORTS, else its inbound
    # clusters; never Istio's own 15000-15090 (a user asks for those explicitly).
    ports = (
        list(ev.app_ports)
        or list(identity_of(ev).app_ports)
        or [p for p in inbound_cluster_ports(ev.envoy) if p not in ISTIO_PORT_RANGE]
        or [DEFAULT_APP_PORT]
    )
    conns: list[dict[str, Any]] = [
        {"direction": "inbound", "client": DEFAULT_CLIENT, "port": p} for p in ports[:MAX_DEFAULT_INBOUND]
    ]
    conns.append(
        {
            "direction": "outbound",
            "dst": outbound_destination(ev),
            "app_uid": DEFAULT_APP_UID,
            "app_gid": DEFAULT_APP_GID,
        }
    )
    return conns


def outbound_destination(ev: Evidence) -> str:
    """A destination the rules capture: inside the first range Istio's outbound rules include
    (`--include-outbound-ip-ranges`: `-A ISTIO_OUTPUT -d RANGE -j ISTIO_REDIRECT`), else the default (captured
    when everything is)."""
    import ipaddress as _ip

    from meshviz.engine.pipeline.evidence import pod_of

    for rs in pod_of(ev).snapshot.rulesets:
        nat = rs.table("nat")
        chain = nat.chain("ISTIO_OUTPUT") if nat else None
        for rule in chain.rules if chain else ():
            if rule.target is None or rule.target.name != "ISTIO_REDIRECT":
                continue
            if rule.dst is None or rule.dst.negated:
                return DEFAULT_OUTBOUND_DST
            net = rule.dst.network
            if net.num_addresses > 2:
                host = net.network_address + min(10, net.num_addresses - 2)
                port = DEFAULT_OUTBOUND_DST.rsplit(":", 1)[1]
                return f"[{host}]:{port}" if isinstance(host, _ip.IPv6Address) else f"{host}:{port}"
    return DEFAULT_OUTBOUND_DST


@dataclass(frozen=True)
class VerdictChange:
    number: int
    connection: dict[str, Any]
    before: str
    after: str
    changed: bool
    before_verdict: dict[str, Any]
    after_verdict: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "connection": dict(self.connection),
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
            "before_verdict": dict(self.before_verdict),
            "after_verdict": dict(self.after_verdict),
            "changed_fields": changed_fields(self.before_verdict, self.after_verdict),
        }


def verdict_diff(
    before: Sequence[Story], after: Sequence[Story], connections: Sequence[Mapping[str, Any]]
) -> list[VerdictChange]:
    """Per connection (1-based number): the verdict line and fields before and after, and whether they differ."""
    if not len(before) == len(after) == len(connections):
        raise ValueError(f"{len(before)} stories before, {len(after)} after, {len(connections)} connections")
    out = []
    for number, (b, a, c) in enumerate(zip(before, after, connections, strict=True), 1):
        bl, al = verdict_line(b), verdict_line(a)
        out.append(
            VerdictChange(
                number=number,
                connection=dict(c),
                before=bl,
                after=al,
                changed=b.verdict != a.verdict or bl != al,
                before_verdict=b.verdict.to_dict(),
                after_verdict=a.verdict.to_dict(),
            )
        )
    return out


def evidence_patch(before: Evidence, after: Evidence) -> str:
    """A unified diff of every evidence text that changed (`a/iptables-save` -> `b/iptables-save` ...)."""
    out: list[str] = []
    for f, name in FILE_NAMES.items():
        a = getattr(before, f) or ""
        b = getattr(after, f) or ""
        if a == b:
            continue
        diff = difflib.unified_diff(
            _split(a), _split(b), fromfile=f"a/{name}" if a else "/dev/null", tofile=f"b/{name}" if b else "/dev/null"
        )
        out.extend(diff)
    return "".join(out)


def _split(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


@dataclass(frozen=True)
class WhatIf:
    errors: tuple[ParseError, ...]
    evidence: Evidence
    before: tuple[Story, ...]
    stories: tuple[Story, ...]
    diff: tuple[VerdictChange, ...]
    patch: str
    connections: tuple[dict[str, Any], ...] = ()
    changes: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: errors, the edited evidence, stories (stored shape), the verdict diff and the patch."""
        return {
            "ok": self.ok,
            "errors": [e.to_dict() for e in self.errors],
            "edits": [e.to_dict() for e in self.edits],
            "changes": list(self.changes),
            "evidence": {f: getattr(self.evidence, f) for f in FILE_NAMES},
            "stories": stored(self.stories, self.connections) if self.stories else [],
            "diff": [d.to_dict() for d in self.diff],
            "changed": sum(1 for d in self.diff if d.changed),
            "patch": self.patch,
        }


def whatif(
    ev: Evidence,
    connections: Sequence[Mapping[str, Any]],
    edits: Sequence[Edit],
    *,
    before: Sequence[Story] | None = None,
) -> WhatIf:
    """Apply the edits to a scratch copy, re-trace every connection and diff the verdicts against the original.

    `before` (the original stories, e.g. from a previous call) saves re-tracing the original.  With edit errors
    nothing is re-traced (`stories` and `diff` are empty); with evidence the engine cannot load after the edits,
    the load errors are returned the same way.
    """
    conns = tuple(dict(c) for c in connections)
    result = apply_edits(ev, edits)
    patch = evidence_patch(ev, result.evidence)
    empty = WhatIf(result.errors, result.evidence, (), (), (), patch, conns, result.changes, tuple(edits))
    if result.errors:
        return empty
    try:
        old = list(before) if before is not None else retrace(ev, conns)
        new = retrace(result.evidence, conns)
    except EngineInputError as e:
        return replace(empty, errors=tuple(e.errors))
    diff = verdict_diff(old, new, conns)
    return WhatIf((), result.evidence, tuple(old), tuple(new), tuple(diff), patch, conns, result.changes, tuple(edits))


__all__ = [
    "OPS",
    "Edit",
    "EditResult",
    "VerdictChange",
    "WhatIf",
    "apply_edits",
    "default_connections",
    "evidence_patch",
    "parse_edits",
    "retrace",
    "stored",
    "verdict_diff",
    "whatif",
]
