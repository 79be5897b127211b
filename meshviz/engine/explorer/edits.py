"""What-if edits: what each may change (rules, policy rules and routes, sysctls, Envoy listeners and clusters), read from
JSON with a named error per bad field, and what applying them gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from meshviz.engine.core.errors import ParseError
from meshviz.engine.pipeline.evidence import Evidence

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
    "policy",
    "add_element",
    "delete_element",
]
OPS: tuple[str, ...] = get_args(Op)

TEXT_KINDS = ("iptables", "ip_rule", "ip_route", "sysctl", "envoy", "nftables")
#: What a rule edit changes: iptables rules (the default) or native nftables (`nft list ruleset`).
BACKENDS = ("iptables", "nft")
#: Evidence field -> the file name used in patches and error sources.
FILE_NAMES = {
    "iptables": "iptables-save",
    "ip_rule": "ip-rule",
    "ip_route": "ip-route",
    "sysctl": "sysctl",
    "envoy": "envoy-config-dump.json",
    "nftables": "nft-ruleset",
}
_INT_FIELDS = ("index", "to_index", "mark")
_STR_FIELDS = (
    "table",
    "chain",
    "rule",
    "kind",
    "text",
    "key",
    "value",
    "address",
    "listener",
    "cluster",
    "family",
    "backend",
    "set",
    "element",
)
#: Every field of an edit's JSON (`Edit.from_dict` refuses any other).
EDIT_FIELDS: tuple[str, ...] = ("op", *_INT_FIELDS, *_STR_FIELDS)


@dataclass(frozen=True)
class Edit:
    """One what-if edit (JSON: `Edit.from_dict` / `to_dict`).

    Rule edits: `table`, `chain`, `index` (1-based), `to_index` (move: the rule's position afterwards), `rule` (save
    syntax, with or without the leading `-A CHAIN`), `family` ("ipv4"/"ipv6"; default: the pod IP's family).
    `set_text` / `append_text`: `kind` (iptables, ip_rule, ip_route, sysctl, envoy) and `text`.  `sysctl`: `key`,
    `value`.  `envoy_bind`: `address` ("" removes the bind) on `cluster` (default: every inbound cluster,
    `inbound|*` and `InboundPassthroughCluster*`).  `envoy_original_src`: `mark` (None removes the filter) on
    `listener` (default virtualInbound).

    nft edits (`backend` "nft"): the rule edits on an nft chain, `table` "NAME" or "FAMILY NAME" (`family` the nft
    family: ip, ip6, inet, ...; needed only when two tables share the name), `rule` in nft syntax (`tcp dport 22
    return`); `policy`: `value` accept or drop for base chain `chain`; `add_element` / `delete_element`: `element`
    (`10.0.0.1`, `80 : drop` in a verdict map, `10.96.0.10 . tcp . 53 : goto svc` ...) of the set or map `set`.
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
    backend: str | None = None
    set: str | None = None
    element: str | None = None

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Edit:
        """An edit from JSON; raises ValueError naming the bad field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"an edit must be an object, not {type(d).__name__}")
        op = d.get("op")
        if op not in OPS:
            raise ValueError(f"unknown edit op {op!r} (one of {', '.join(OPS)})")
        unknown = set(d) - set(EDIT_FIELDS)
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
        if self.backend == "nft" or self.op in ("policy", "add_element", "delete_element"):
            where = f"nft {self.family + ' ' if self.family and ' ' not in (self.table or '') else ''}{where}"
        if self.op in ("insert", "replace", "delete"):
            return f"{self.op} {where} #{self.index}" + (f": {self.rule}" if self.rule else "")
        if self.op == "move":
            return f"move {where} #{self.index} to #{self.to_index}"
        if self.op in ("set_text", "append_text"):
            return f"{self.op} {self.kind}"
        if self.op == "sysctl":
            return f"sysctl {self.key} = {self.value}"
        if self.op == "policy":
            return f"policy of {where}: {self.value}"
        if self.op in ("add_element", "delete_element"):
            verb = "add" if self.op == "add_element" else "delete"
            return f"{verb} element {self.element} in {self.table} @{self.set}"
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
