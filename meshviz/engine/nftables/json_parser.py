"""Parse `nft -j list ruleset` (libnftables' JSON schema, nft(8) / libnftables-json(5)) into the same model as
the text parsers.  A rule's text is rendered from its statements in `nft list ruleset` form; an object's
position in the `nftables` array stands in for its line number."""

from __future__ import annotations

import json
from typing import Any

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import SourceRef
from meshviz.engine.core.safejson import loads
from meshviz.engine.nftables.model import (
    AnonSet,
    Binop,
    Concat,
    Counter,
    Element,
    Expr,
    FlagList,
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

_BINOPS = {"&": "&", "|": "|", "^": "^", "<<": "<<", ">>": ">>"}


class _Bad(Exception):
    pass


class _NotModelled(Exception):
    pass


def _scalar(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        raise _Bad(f"expected a value, found {json.dumps(v)}")
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, dict):
        if "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if "range" in v:
            lo, hi = v["range"]
            return f"{_scalar(lo)}-{_scalar(hi)}"
    raise _Bad(f"expected a value, found {json.dumps(v)[:80]}")


def _expr(v: Any) -> Expr:
    if isinstance(v, dict) and len(v) == 1:
        ((k, body),) = v.items()
        if k == "meta":
            return Selector(f"meta {body['key']}")
        if k == "payload":
            if "protocol" not in body:
                raise _NotModelled("raw payload expressions")
            return Selector(f"{body['protocol']} {body['field']}")
        if k == "ct":
            d = f"{body['dir']} " if body.get("dir") else ""
            return Selector(f"ct {d}{body['key']}")
        if k == "fib":
            flags = body.get("flags", [])
            flags = [flags] if isinstance(flags, str) else flags
            return Selector(f"fib {' . '.join(flags)} {body['result']}")
        if k == "socket":
            return Selector(f"socket {body['key']}")
        if k in _BINOPS:
            left, right = body
            return Binop(_expr(left), _BINOPS[k], Value(_scalar(right)))
        if k == "concat":
            return Concat(tuple(_expr(x) for x in body))
        if k in ("prefix", "range"):
            return Value(_scalar(v))
        raise _NotModelled(f"{k} expressions")
    return Value(_scalar(v))


def _verdict(v: Any) -> Verdict | None:
    if isinstance(v, dict) and len(v) == 1:
        ((k, body),) = v.items()
        if k in ("accept", "drop", "return", "continue"):
            return Verdict(k)
        if k in ("jump", "goto"):
            return Verdict(k, body["target"])
    return None


def _element(v: Any) -> Element:
    data: Value | Verdict | None = None
    if isinstance(v, list) and len(v) == 2:
        v, d = v
        data = _verdict(d) or Value(_scalar(d))
    if isinstance(v, dict) and "elem" in v:
        v = v["elem"]["val"]
    if isinstance(v, dict) and "concat" in v:
        return Element(tuple(Value(_scalar(x)) for x in v["concat"]), data)
    return Element((Value(_scalar(v)),), data)


def _right(v: Any) -> Right:
    if isinstance(v, str) and v.startswith("@"):
        return SetRef(v[1:])
    if isinstance(v, dict) and "set" in v:
        items = v["set"]
        return AnonSet(tuple(_element(x) for x in (items if isinstance(items, list) else [items])))
    if isinstance(v, list):
        return FlagList(tuple(_scalar(x) for x in v))
    return Value(_scalar(v))


def _statement(s: dict[str, Any]) -> Statement:
    ((k, body),) = s.items()
    verdict = _verdict(s)
    if verdict is not None:
        return verdict
    if k == "match":
        op = {"in": "=="}.get(body["op"], body["op"])
        return Match(_expr(body["left"]), op, _right(body["right"]), body["op"] not in ("==", "in"))
    if k == "counter":
        body = body or {}
        return Counter(int(body.get("packets", 0)), int(body.get("bytes", 0)))
    if k == "mangle":
        key = _expr(body["key"])
        if not isinstance(key, Selector):
            raise _Bad("mangle needs a field to set")
        return SetStmt(key, _expr(body["value"]))
    if k in ("redirect", "masquerade", "dnat", "snat"):
        body = body or {}
        flags = body.get("flags", [])
        return Nat(
            k,
            body.get("family"),
            _scalar(body["addr"]) if "addr" in body else None,
            int(_scalar(body["port"]).split("-")[0]) if "port" in body else None,
            tuple([flags] if isinstance(flags, str) else flags),
        )
    if k == "tproxy":
        return Tproxy(body.get("family"), body.get("addr"), int(body["port"]) if "port" in body else None)
    if k == "vmap":
        m = _right(body["data"])
        if not isinstance(m, AnonSet | SetRef):
            raise _Bad("vmap needs a set of verdicts")
        return Vmap(_expr(body["key"]), m)
    if k == "notrack":
        return Simple("notrack")
    if k == "log":
        body = body or {}
        return Simple("log", " ".join(f"{a} {json.dumps(b)}" for a, b in body.items()))
    raise _NotModelled(f"{k} statements")


def parse_nft_json(text: str, source: str = "nftables") -> NftParseResult:
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    try:
        doc = loads(text)
    except json.JSONDecodeError as e:
        line = text.splitlines()[e.lineno - 1] if 0 < e.lineno <= len(text.splitlines()) else ""
        err = ParseError(source, e.lineno, e.colno, line.strip()[:120], e.msg)
        return NftParseResult(NftRuleset((), source), (err,), (), "json")
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        err = ParseError(source, 1, 1, text.strip()[:80], 'expected {"nftables": [...]} (nft -j list ruleset)')
        return NftParseResult(NftRuleset((), source), (err,), (), "json")
    tables: dict[tuple[str, str], dict[str, Any]] = {}

    def table(fam: str, name: str) -> dict[str, Any]:
        return tables.setdefault((fam, name), {"chains": {}, "sets": {}, "handle": None})

    for n, obj in enumerate(items, 1):
        if not isinstance(obj, dict) or len(obj) != 1:
            errors.append(ParseError(source, n, 1, json.dumps(obj)[:120], "expected one object per array item"))
            continue
        ((kind, body),) = obj.items()
        try:
            if kind == "metainfo":
                continue
            if kind == "table":
                table(body["family"], body["name"])["handle"] = body.get("handle")
            elif kind == "chain":
                prio = body.get("prio")
                t = table(body["family"], body["table"])
                t["chains"][body["name"]] = {
                    "rules": [],
                    "type": body.get("type"),
                    "hook": body.get("hook"),
                    "priority": parse_priority(str(prio)) if prio is not None else None,
                    "policy": body.get("policy") if body.get("hook") else None,
                    "device": body.get("dev"),
                    "handle": body.get("handle"),
                    "ref": SourceRef(source, n, f"chain {body['family']} {body['table']} {body['name']}"),
                }
            elif kind in ("set", "map"):
                t = table(body["family"], body["table"])
                ktype = body.get("type", "")
                elems = tuple(
                    _element([e[0], e[1]] if kind == "map" and isinstance(e, list) else e) for e in body.get("elem", [])
                )
                t["sets"][body["name"]] = NftSet(
                    body["name"],
                    " . ".join(ktype) if isinstance(ktype, list) else str(ktype),
                    str(body.get("map")) if kind == "map" else None,
                    tuple(body.get("flags", [])),
                    elems,
                    SourceRef(source, n, f"{kind} {body['family']} {body['table']} {body['name']}"),
                )
            elif kind == "rule":
                t = table(body["family"], body["table"])
                chain = t["chains"].get(body["chain"])
                if chain is None:
                    raise _Bad(f"rule for chain {body['chain']} listed before the chain")
                stmts: list[Statement] = []
                comment = body.get("comment")
                for s in body.get("expr", []):
                    try:
                        stmts.append(_statement(s))
                    except _NotModelled as e:
                        stmts.append(Unmodelled(json.dumps(s), f"{e} not modelled"))
                r = NftRule(body["family"], body["table"], body["chain"], tuple(stmts), body.get("handle"), comment)
                chain["rules"].append(
                    NftRule(r.family, r.table, r.chain, r.statements, r.handle, comment, SourceRef(source, n, r.text()))
                )
            else:
                warnings.append(ParseWarning(source, n, kind, f"{kind} objects are not modelled"))
        except (_Bad, KeyError, TypeError, ValueError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e)
            errors.append(ParseError(source, n, 1, json.dumps(obj)[:120], f"{kind}: {what}"))
    out = tuple(
        NftTable(
            fam,
            name,
            tuple(
                NftChain(
                    cn,
                    tuple(c["rules"]),
                    c["type"],
                    c["hook"],
                    c["priority"],
                    c["policy"],
                    c["device"],
                    c["handle"],
                    c["ref"],
                )
                for cn, c in t["chains"].items()
            ),
            tuple(t["sets"].values()),
            t["handle"],
        )
        for (fam, name), t in tables.items()
    )
    return NftParseResult(NftRuleset(out, source), tuple(errors), tuple(warnings), "json")
