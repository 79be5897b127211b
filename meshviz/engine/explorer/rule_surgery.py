"""What-if edits of iptables rules: text surgery on the evidence as the user wrote it (insert, replace, delete, move),
each new rule checked by the real parser first and every other line kept byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import replace

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.model import Family
from meshviz.engine.explorer.edits import FILE_NAMES, Edit, _EditFailed
from meshviz.engine.netfilter.model import BUILTIN_CHAINS, Rule, Ruleset
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables
from meshviz.engine.netfilter.render import render_rule
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.pipeline.rulescache import iptables_once

# --------------------------------------------------------------------------
# iptables text surgery
# --------------------------------------------------------------------------


def _parsed(text: str) -> IptablesParseResult:
    """The rules parsed as the snapshot parses them (`rulescache.iptables_once`): the original's parse is the
    analysis's, and the edited text's is the one the re-traced stories then read (issue 15: a what-if of a
    node-sized pod parsed the 80,000 rules three times)."""
    return iptables_once(text, source="iptables")


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
        source = FILE_NAMES["iptables"]
        raise _EditFailed([ParseError(source, e.line, e.column, e.text, f"the rules do not parse: {e.message}")])
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


def _others(text: str, fam: Family, table: str, chain: str) -> list[tuple[str, str, str, list[object]]]:
    """Every other chain's rules, each as the line it was parsed from (the parser reads a rule line the same way in
    the same table and chain, so equal lines are equal rules): rendering all 80,000 rules of a node twice took 20 s,
    comparing them as parsed objects seconds, and a fast-parsed chain says its lines without building its rules."""
    parsed = _parsed(text)
    return [
        (str(rs.family), t.name, c.name, c.rule_lines())
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
