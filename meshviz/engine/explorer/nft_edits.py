"""What-if edits of native nftables evidence (`nft list ruleset`, `nft -f` scripts): insert, replace, delete or move a
rule in a chain, change a base chain's policy, add or delete an element of a named set or map.

Like the iptables edits (`rule_surgery.py`), an edit rewrites the evidence text as the user gave it and is verified
by parsing the result with the nftables parser: the edited chain (or set) must hold exactly what the edit asked for
and every other chain, policy and set must be unchanged, otherwise the edit is refused.

* A rule edit touches only the rule's line: deleted, replaced (keeping its indentation, its `# handle N` and, in a
  script, its `add rule FAMILY TABLE CHAIN` prefix) or a new line beside a neighbouring rule in the same style.
  When that cannot express the edit (the line holds more than the rule, a chain with no rules in a script), the
  edit is appended as the nft command a user would run: `add rule ...`, `insert rule ... index N ...`, or - when
  the evidence shows handles (`nft -a`) - `replace rule ... handle H ...` / `delete rule ... handle H`.
* A policy edit rewrites the chain's `policy X;` (or adds one to its `type ... priority P;` line); otherwise it
  appends `add chain FAMILY TABLE CHAIN { type T hook H priority P; policy X; }`.
* An element edit appends `add element FAMILY TABLE SET { ELEMENT }` / `delete element ...`.

The new rule is parsed on its own first, so a bad rule names the edit, line 1 and the column in the rule text as
the user wrote it.  `nft -j` JSON evidence is not edited (an error says so).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from functools import lru_cache

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.names import protocol_number, service_port
from meshviz.engine.explorer.edits import FILE_NAMES, Edit, _EditFailed
from meshviz.engine.explorer.nft_view import shown_handle
from meshviz.engine.nftables.model import FAMILIES, NftChain, NftParseResult, NftRule, NftRuleset, NftSet, NftTable
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.pipeline.evidence import Evidence

RULE_OPS = ("insert", "replace", "delete", "move")
NFT_OPS = ("policy", "add_element", "delete_element")
POLICIES = ("accept", "drop")

_SCRIPT_RULE = re.compile(
    r"^(?P<pre>\s*(?:add|create|insert)\s+rule\s+(?:(?:" + "|".join(FAMILIES) + r")\s+)?\S+\s+\S+\s+"
    r"(?:(?:index|position|handle)\s+\d+\s+)?)(?P<body>.*?)\s*$"
)
_HANDLE = re.compile(r"\s*#\s*handle\s+\d+\s*$")
_POLICY = re.compile(r"\bpolicy\s+(accept|drop)\b")
_CHAIN_SPEC = re.compile(r"\btype\s+\S+\s+hook\s+\S+.*?\bpriority\s+[^;}]+;?")


def _err(n: int, message: str, text: str = "", line: int = 0, column: int = 0) -> _EditFailed:
    return _EditFailed([ParseError(f"edit {n}", line, column, text, message)])


@lru_cache(maxsize=16)
def _parsed(text: str) -> NftParseResult:
    return parse_nftables(text, source=FILE_NAMES["nftables"])


def _ruleset(ev: Evidence, n: int) -> tuple[str, NftRuleset]:
    text = ev.nftables or ""
    if not text.strip():
        raise _err(n, "the evidence has no nftables ruleset (nft list ruleset) to edit")
    if text.lstrip().startswith("{"):
        raise _err(n, "nft -j JSON evidence is not edited here: give `nft list ruleset` (or its -a form) instead")
    parsed = _parsed(text)
    if parsed.errors:
        e = parsed.errors[0]
        raise _EditFailed([ParseError(e.source, e.line, e.column, e.text, f"the nft rules do not parse: {e.message}")])
    return text, parsed.ruleset


def _table(rs: NftRuleset, edit: Edit, n: int) -> NftTable:
    """`table` "NAME" or "FAMILY NAME"; `family` the nft family when the name alone is ambiguous."""
    name = (edit.table or "").strip()
    if not name:
        raise _err(n, "the edit needs an nft table (e.g. `inet istio-proxy-nat`)")
    family = edit.family
    first, _, rest = name.partition(" ")
    if rest and first in FAMILIES:
        family, name = first, rest.strip()
    if family is not None and family not in FAMILIES:
        raise _err(n, f"unknown nft family {family!r} (one of {', '.join(FAMILIES)})", family)
    found = [t for t in rs.tables if t.name == name and (family is None or t.family == family)]
    if not found:
        have = ", ".join(t.label for t in rs.tables) or "none"
        raise _err(n, f"no nft table {(family + ' ') if family else ''}{name} (tables: {have})", name)
    if len(found) > 1:
        raise _err(n, f"nft table {name} is in several families ({', '.join(t.family for t in found)}): give family")
    return found[0]


def _chain(table: NftTable, edit: Edit, n: int) -> NftChain:
    chain = table.chain(edit.chain or "")
    if chain is None:
        raise _err(n, f"no chain {edit.chain!r} in nft table {table.label}", edit.chain or "")
    return chain


def _index(edit: Edit, chain: NftChain, n: int, *, insert: bool = False) -> int:
    count = len(chain.rules)
    index = edit.index if edit.index is not None else (count + 1 if insert else None)
    if index is None:
        raise _err(n, f"{edit.op} needs the rule's index (1..{count})")
    top = count + 1 if insert else count
    if not 1 <= index <= top:
        raise _err(n, f"index {index} is out of range: chain {chain.name} has {count} rules (1..{top})", str(index))
    return index


# --------------------------------------------------------------------------
# the new rule, parsed on its own
# --------------------------------------------------------------------------


def _new_rule(table: NftTable, chain: NftChain, text: str | None, n: int) -> tuple[str, str]:
    """(the rule as the user wrote it, trimmed; its statements as nft lists them), or the parser's error."""
    if text is None or not text.strip():
        raise _err(n, "the edit needs a rule in nft syntax (e.g. `tcp dport 22 return`)", text or "", 1, 1)
    if "\n" in text.strip():
        raise _err(n, "one rule per edit: the rule text has several lines", text, 1, text.index("\n") + 1)
    body = _HANDLE.sub("", text.rstrip())
    others = "".join(f"chain {c.name} {{\n}}\n" for c in table.chains if c.name != chain.name)
    sets = "".join(
        f"{'map' if s.is_map else 'set'} {s.name} {{\ntype {s.key_type}{' : ' + s.data_type if s.data_type else ''}\n}}\n"
        for s in table.sets
    )
    head = f"table {table.family} {table.name} {{\n{others}{sets}chain {chain.name} {{\n"
    line = head.count("\n") + 1
    parsed = parse_nftables(head + body + "\n}\n}\n", source=f"edit {n}")
    for e in parsed.errors:
        column = e.column if e.line == line else 1
        if "does not exist" in e.message:
            target = re.search(r"chain '([^']*)'", e.message)
            column = body.find(target.group(1)) + 1 if target and target.group(1) in body else 1
        raise _err(n, e.message, text, 1, max(1, column))
    built = parsed.ruleset.table(table.family, table.name)
    own = built.chain(chain.name) if built is not None else None
    rules = own.rules if own is not None else ()
    if len(parsed.ruleset.tables) != 1 or built is None or len(built.chains) != len(table.chains):
        raise _err(
            n, "the rule text closes its chain or table (unbalanced braces)", text, 1, max(1, body.find("}") + 1)
        )
    if len(rules) != 1:
        raise _err(n, f"one rule per edit: the text holds {len(rules)} rules", text, 1, 1)
    return body.strip(), rules[0].text()


# --------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------


def _shape(rs: NftRuleset) -> dict[tuple[str, str], object]:
    """What every chain and set of the ruleset holds, for comparing before and after an edit."""
    out: dict[tuple[str, str], object] = {}
    for t in rs.tables:
        for c in t.chains:
            out[(t.label, f"chain {c.name}")] = (c.policy, c.type, c.hook, tuple(r.text() for r in c.rules))
        for s in t.sets:
            out[(t.label, f"set {s.name}")] = tuple(e.text() for e in s.elements)
    return out


def _verified(text: str, expected: dict[tuple[str, str], object]) -> bool:
    """The edited text parses to exactly `expected` (its parse is kept: the next edit starts from it)."""
    parsed = _parsed(text)
    return not parsed.errors and _shape(parsed.ruleset) == expected


def _with_lines(text: str, at: int, remove: int, new: list[str]) -> str:
    """`text` with `remove` lines from 1-based line `at` replaced by `new` (each without its line end)."""
    lines = text.splitlines(keepends=True)
    end = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += end
    lines[at - 1 : at - 1 + remove] = [ln + end for ln in new]
    return "".join(lines)


def _appended(text: str, command: str) -> str:
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}{command}\n"


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _styled(text: str, anchor: NftRule, body: str) -> str:
    """A new rule line in the style of the anchor rule's line (its indentation, or its `add rule ...` prefix)."""
    line = _line(text, anchor.ref.line if anchor.ref is not None else 0)
    m = _SCRIPT_RULE.match(line)
    if m is not None:
        pre = re.sub(r"(?:index|position|handle)\s+\d+\s+$", "", m.group("pre"))
        return pre.replace("insert", "add", 1) + body
    indent = line[: len(line) - len(line.lstrip())]
    return indent + body


def _replaced_line(text: str, rule: NftRule, body: str) -> str:
    line = _line(text, rule.ref.line if rule.ref is not None else 0)
    m = _SCRIPT_RULE.match(line)
    handle = _HANDLE.search(line)
    suffix = handle.group(0) if handle else ""
    if m is not None:
        return m.group("pre") + body + suffix
    indent = line[: len(line) - len(line.lstrip())]
    return indent + body + suffix


def _rule_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    text, rs = _ruleset(ev, n)
    table = _table(rs, edit, n)
    chain = _chain(table, edit, n)
    rules = list(chain.rules)
    texts = [r.text() for r in rules]
    key = (table.label, f"chain {chain.name}")
    expected = _shape(rs)
    where = f"nft {table.label}/{chain.name}"
    cmd = f"{table.family} {table.name} {chain.name}"
    tries: list[str] = []
    if edit.op == "insert":
        index = _index(edit, chain, n, insert=True)
        body, canonical = _new_rule(table, chain, edit.rule, n)
        new_texts = [*texts[: index - 1], canonical, *texts[index - 1 :]]
        if rules:
            anchor = rules[index - 1] if index <= len(rules) else rules[-1]
            at = anchor.ref.line if anchor.ref is not None else 0
            if at:
                tries.append(_with_lines(text, at if index <= len(rules) else at + 1, 0, [_styled(text, anchor, body)]))
        elif chain.ref is not None:
            tries.append(_insert_in_empty_chain(text, chain, body))
        tries.append(
            _appended(text, f"insert rule {cmd} index {index - 1} {body}")
            if index <= len(rules)
            else _appended(text, f"add rule {cmd} {body}")
        )
        change = f"{where}: rule inserted as #{index}: {canonical}"
    elif edit.op in ("replace", "delete"):
        index = _index(edit, chain, n)
        rule = rules[index - 1]
        at = rule.ref.line if rule.ref is not None else 0
        handle = shown_handle(rule)
        if edit.op == "replace":
            body, canonical = _new_rule(table, chain, edit.rule, n)
            new_texts = [*texts[: index - 1], canonical, *texts[index:]]
            if at:
                tries.append(_with_lines(text, at, 1, [_replaced_line(text, rule, body)]))
            if handle is not None:
                tries.append(_appended(text, f"replace rule {cmd} handle {handle} {body}"))
            change = f"{where}: rule {index} replaced (line {at}): {canonical}"
        else:
            new_texts = texts[: index - 1] + texts[index:]
            if at:
                tries.append(_with_lines(text, at, 1, []))
            if handle is not None:
                tries.append(_appended(text, f"delete rule {cmd} handle {handle}"))
            change = f"{where}: rule {index} deleted (line {at})"
    else:  # move: delete, then insert the same text
        index = _index(edit, chain, n)
        if edit.to_index is None or not 1 <= edit.to_index <= len(rules):
            raise _err(n, f"to_index must be from 1 to {len(rules)}, not {edit.to_index}", str(edit.to_index))
        rule = rules[index - 1]
        body = _HANDLE.sub("", rule.ref.text if rule.ref is not None else rule.text())
        m = _SCRIPT_RULE.match(body)
        body = m.group("body") if m else body
        order = list(range(len(rules)))
        order.insert(edit.to_index - 1, order.pop(index - 1))
        new_texts = [texts[i] for i in order]
        at = rule.ref.line if rule.ref is not None else 0
        if at and all(r.ref is not None for r in rules):
            removed = _with_lines(text, at, 1, [])
            target = rules[order[edit.to_index]] if edit.to_index < len(rules) else None
            if target is not None and target.ref is not None:
                line = target.ref.line - (1 if target.ref.line > at else 0)
                tries.append(_with_lines(removed, line, 0, [_styled(text, rule, body)]))
            else:
                last = rules[order[edit.to_index - 2]]
                line = (last.ref.line if last.ref else 0) - (1 if last.ref and last.ref.line > at else 0)
                tries.append(_with_lines(removed, line + 1, 0, [_styled(text, rule, body)]))
        change = f"{where}: rule {index} moved to #{edit.to_index}"
    expected[key] = (chain.policy, chain.type, chain.hook, tuple(new_texts))
    for candidate in tries:
        if _verified(candidate, expected):
            return replace(ev, nftables=candidate), change
    raise _err(
        n,
        f"cannot {edit.op} rule {edit.index} of {where} in the text as given"
        + ("" if any(shown_handle(r) is not None for r in rules) else " (a listing with handles, nft -a, allows it)"),
        edit.rule or "",
    )


def _insert_in_empty_chain(text: str, chain: NftChain, body: str) -> str:
    """A first rule in a chain with none: after the chain's `type ... priority P; policy X;` line, or its
    opening line (block syntax)."""
    start = chain.ref.line if chain.ref is not None else 0
    lines = text.splitlines()
    opening = lines[start - 1] if 0 < start <= len(lines) else ""
    indent = opening[: len(opening) - len(opening.lstrip())] + ("\t" if opening.startswith("\t") else "    ")
    at = start
    if chain.base and start < len(lines) and _CHAIN_SPEC.search(lines[start]):
        at = start + 1
    return _with_lines(text, at + 1, 0, [indent + body])


def _policy_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    text, rs = _ruleset(ev, n)
    table = _table(rs, edit, n)
    chain = _chain(table, edit, n)
    value = (edit.value or "").strip().lower()
    if value not in POLICIES:
        raise _err(n, f"policy must be accept or drop, not {edit.value!r}", edit.value or "")
    if not chain.base:
        raise _err(n, f"chain {chain.name} of nft {table.label} is a regular chain: only base chains have a policy")
    expected = _shape(rs)
    key = (table.label, f"chain {chain.name}")
    expected[key] = (value, chain.type, chain.hook, tuple(r.text() for r in chain.rules))
    tries: list[str] = []
    start = chain.ref.line if chain.ref is not None else 0
    last = chain.rules[0].ref.line if chain.rules and chain.rules[0].ref is not None else start + 2
    for number in range(start, last + 1) if start else ():
        line = _line(text, number)
        if _POLICY.search(line):
            tries.append(_with_lines(text, number, 1, [_POLICY.sub(f"policy {value}", line, count=1)]))
            break
        spec = _CHAIN_SPEC.search(line)
        if spec:
            end = spec.group(0) if spec.group(0).endswith(";") else spec.group(0) + ";"
            new = line[: spec.start()] + end + f" policy {value};" + line[spec.end() :]
            tries.append(_with_lines(text, number, 1, [new]))
            break
    tries.append(
        _appended(
            text,
            f"add chain {table.family} {table.name} {chain.name} {{ type {chain.type} hook {chain.hook} "
            f"priority {chain.priority}; policy {value}; }}",
        )
    )
    for candidate in tries:
        if _verified(candidate, expected):
            return replace(ev, nftables=candidate), f"nft {table.label}/{chain.name}: policy {chain.policy} -> {value}"
    raise _err(n, f"cannot change the policy of nft {table.label}/{chain.name} in the text as given")


def _value_ok(kind: str, value: str) -> bool:
    """Whether `value` (an address, prefix or range for addresses, a port or range, ...) fits the set's key type;
    types the explorer does not know pass (the parser keeps values as written)."""
    parts = [p for p in re.split(r"(?<=[^-])-(?=[^-])", value) if p] if kind != "ifname" else [value]
    try:
        for part in parts:
            if kind in ("ipv4_addr", "ipv6_addr"):
                net = ipaddress.ip_network(part, strict=False)
                if net.version != (4 if kind == "ipv4_addr" else 6):
                    return False
            elif kind == "inet_service":
                if service_port(part) is None and not (part.isdecimal() and int(part) < 65536):
                    return False
            elif kind == "inet_proto":
                if protocol_number(part) is None:
                    return False
            elif kind in ("mark", "ct_state", "integer"):
                int(part, 0)
    except ValueError:
        return False
    return True


def _check_element(nft_set: NftSet, element: str, n: int) -> None:
    """Each part of the element's key fits the set's key type (`ipv4_addr . inet_proto . inet_service`)."""
    kinds = [k.strip() for k in nft_set.key_type.split(" . ")]
    key = element.split(" : ", 1)[0]
    parts = key.split(" . ")
    if nft_set.key_type.startswith("typeof"):
        return
    if len(parts) != len(kinds):
        raise _err(
            n,
            f"@{nft_set.name} has keys of type {nft_set.key_type}: {len(kinds)} part(s), not {len(parts)}",
            element,
            1,
            1,
        )
    column = 1
    for kind, part in zip(kinds, parts, strict=True):
        value = part.strip()
        if not _value_ok(kind, value):
            at = element.find(value, column - 1) + 1
            raise _err(n, f"{value!r} is not of type {kind} (the key type of @{nft_set.name})", element, 1, max(1, at))
        column += len(part) + 3


def _element_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    text, rs = _ruleset(ev, n)
    table = _table(rs, edit, n)
    nft_set = table.set(edit.set or "")
    if nft_set is None:
        have = ", ".join(s.name for s in table.sets) or "none"
        raise _err(n, f"no set or map {edit.set!r} in nft table {table.label} (sets and maps: {have})", edit.set or "")
    element = (edit.element or "").strip()
    if not element or "\n" in element:
        raise _err(n, f"{edit.op} needs one element (e.g. `10.0.0.1`, `80 : drop` in a map)", element, 1, 1)
    _check_element(nft_set, element, n)
    verb = "add" if edit.op == "add_element" else "delete"
    prefix = f"{verb} element {table.family} {table.name} {nft_set.name} {{ "
    candidate = _appended(text, prefix + element + " }")
    parsed = _parsed(candidate)
    last = len(candidate.splitlines())
    for e in parsed.errors:
        column = e.column - len(prefix) if e.line == last and e.column > len(prefix) else 1
        raise _err(n, e.message, element, 1, column)
    after = parsed.ruleset.table(table.family, table.name)
    changed = after.set(nft_set.name) if after is not None else None
    if changed is None:
        raise _err(n, f"cannot {verb} the element of @{nft_set.name}", element, 1, 1)
    before = {e.text() for e in nft_set.elements}
    now = {e.text() for e in changed.elements}
    if now == before:
        why = "is already in" if verb == "add" else "is not in"
        raise _err(n, f"{element} {why} {'map' if nft_set.is_map else 'set'} @{nft_set.name}", element, 1, 1)
    if nft_set.is_map and verb == "add" and not all(e.data is not None for e in changed.elements):
        raise _err(n, f"@{nft_set.name} is a map: the element needs `KEY : VALUE`", element, 1, 1)
    expected = _shape(rs)
    expected[(table.label, f"set {nft_set.name}")] = tuple(e.text() for e in changed.elements)
    if not _verified(candidate, expected):
        raise _err(n, f"cannot {verb} the element of @{nft_set.name} without changing anything else", element)
    kind = "map" if nft_set.is_map else "set"
    return replace(ev, nftables=candidate), f"nft {table.label} {kind} @{nft_set.name}: {verb} {element}"


def nft_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    """Apply one nft edit (a rule edit with backend "nft", policy, add_element, delete_element)."""
    if edit.op in RULE_OPS:
        return _rule_edit(ev, edit, n)
    if edit.op == "policy":
        return _policy_edit(ev, edit, n)
    return _element_edit(ev, edit, n)
