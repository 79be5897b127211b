"""Diff two analyses: rules per chain, policy routing, sysctls, Envoy listeners and clusters, and verdicts.

    d = diff_evidence(ev_a, ev_b, stories_a, stories_b)    # stories in the stored shape (Analysis.results["stories"])
    d.to_dict()

Rules are compared per (family, table, chain) on their canonical iptables-save text (`render_rule`, so `-I CHAIN 1`
lines and `-A` lines of the same rule compare equal): the two sequences are aligned with difflib's SequenceMatcher;
a rule text removed in one place and added in another is reported as moved (with both indexes), the rest as added or
removed.  Connections are paired by their connection dict (direction plus client/port or dst/app uid/gid); a
connection analysed on one side only is listed too.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.model import Family
from meshviz.engine.envoy.model import ORIGINAL_SRC, Cluster, EnvoyConfig, Listener
from meshviz.engine.netfilter.model import Chain, Ruleset
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_rule
from meshviz.engine.pipeline.evidence import Evidence, verdict_line
from meshviz.engine.routing.defaults import default_policy_rules
from meshviz.engine.routing.explain import explain_policy_rule, explain_route
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.story.model import Story, changed_fields

# --------------------------------------------------------------------------
# iptables
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChange:
    """One rule added (`index` in b), removed (`index` in a) or moved (`index` in a, `to_index` in b)."""

    text: str
    index: int
    to_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text, "index": self.index}
        if self.to_index is not None:
            d["to_index"] = self.to_index
        return d


@dataclass(frozen=True)
class ChainDiff:
    """What changed in one chain; `status` is "added", "removed" or "changed"."""

    family: str
    table: str
    chain: str
    status: str
    added: tuple[RuleChange, ...] = ()
    removed: tuple[RuleChange, ...] = ()
    moved: tuple[RuleChange, ...] = ()
    policy_before: str | None = None
    policy_after: str | None = None

    @property
    def policy_changed(self) -> bool:
        return self.status == "changed" and self.policy_before != self.policy_after

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "table": self.table,
            "chain": self.chain,
            "status": self.status,
            "added": [r.to_dict() for r in self.added],
            "removed": [r.to_dict() for r in self.removed],
            "moved": [r.to_dict() for r in self.moved],
            "policy_before": self.policy_before,
            "policy_after": self.policy_after,
            "policy_changed": self.policy_changed,
        }


@dataclass(frozen=True)
class RulesetDiff:
    family: str
    chains: tuple[ChainDiff, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.chains

    @property
    def chains_added(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.table, c.chain) for c in self.chains if c.status == "added")

    @property
    def chains_removed(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.table, c.chain) for c in self.chains if c.status == "removed")

    def chain(self, table: str, chain: str) -> ChainDiff | None:
        return next((c for c in self.chains if c.table == table and c.chain == chain), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "chains": [c.to_dict() for c in self.chains],
            "chains_added": [list(x) for x in self.chains_added],
            "chains_removed": [list(x) for x in self.chains_removed],
        }


def _texts(chain: Chain | None) -> list[str]:
    return [render_rule(r) for r in chain.rules] if chain is not None else []


def diff_chain(family: str, table: str, name: str, a: Chain | None, b: Chain | None) -> ChainDiff | None:
    """The difference of one chain between two rulesets (None when equal)."""
    ta, tb = _texts(a), _texts(b)
    if a is None and b is None:
        return None
    if a is None:
        assert b is not None
        return ChainDiff(
            family, table, name, "added", added=tuple(RuleChange(t, i) for i, t in enumerate(tb, 1)),
            policy_after=b.policy,
        )  # fmt: skip
    if b is None:
        return ChainDiff(
            family, table, name, "removed", removed=tuple(RuleChange(t, i) for i, t in enumerate(ta, 1)),
            policy_before=a.policy,
        )  # fmt: skip
    removed: list[RuleChange] = []
    added: list[RuleChange] = []
    sm = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op in ("delete", "replace"):
            removed.extend(RuleChange(ta[i], i + 1) for i in range(i1, i2))
        if op in ("insert", "replace"):
            added.extend(RuleChange(tb[j], j + 1) for j in range(j1, j2))
    moved: list[RuleChange] = []
    for r in list(removed):
        match = next((x for x in added if x.text == r.text), None)
        if match is not None:
            removed.remove(r)
            added.remove(match)
            moved.append(RuleChange(r.text, r.index, match.index))
    if not (added or removed or moved) and a.policy == b.policy:
        return None
    return ChainDiff(family, table, name, "changed", tuple(added), tuple(removed), tuple(moved), a.policy, b.policy)


def diff_rulesets(a: Ruleset | None, b: Ruleset | None) -> RulesetDiff:
    """Per (table, chain), in a's order then b's new ones: rules added, removed, moved; chains added/removed."""
    family = str((a or b).family) if (a or b) is not None else str(Family.IPV4)  # type: ignore[union-attr]
    keys: list[tuple[str, str]] = []
    for rs in (a, b):
        for t in rs.tables if rs is not None else ():
            for c in t.chains:
                if (t.name, c.name) not in keys:
                    keys.append((t.name, c.name))
    out: list[ChainDiff] = []
    for table, chain in keys:
        ta = a.table(table) if a is not None else None
        tb = b.table(table) if b is not None else None
        d = diff_chain(
            family,
            table,
            chain,
            ta.chain(chain) if ta is not None else None,
            tb.chain(chain) if tb is not None else None,
        )
        if d is not None:
            out.append(d)
    return RulesetDiff(family, tuple(out))


# --------------------------------------------------------------------------
# Envoy
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ObjectDiff:
    """A listener or cluster: `status` is "added", "removed" or "changed" (with the fields that changed)."""

    name: str
    status: str
    changes: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class EnvoyDiff:
    listeners: tuple[ObjectDiff, ...] = ()
    clusters: tuple[ObjectDiff, ...] = ()
    given: tuple[bool, bool] = (True, True)  # whether each side has a dump

    @property
    def empty(self) -> bool:
        return not self.listeners and not self.clusters and self.given[0] == self.given[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "before_given": self.given[0],
            "after_given": self.given[1],
            "listeners": [x.to_dict() for x in self.listeners],
            "clusters": [x.to_dict() for x in self.clusters],
        }


def _listener_facts(lst: Listener) -> dict[str, Any]:
    osrc = lst.listener_filter(ORIGINAL_SRC)
    return {
        "address": lst.address.describe() if lst.address is not None else None,
        "state": lst.state,
        "bind_to_port": lst.bind_to_port,
        "use_original_dst": lst.use_original_dst,
        "transparent": lst.transparent,
        "filter_chains": len(lst.filter_chains) + (1 if lst.default_filter_chain is not None else 0),
        "original_src": None if osrc is None else (osrc.mark or 0),
        "listener_filters": [f.kind or f.name for f in lst.listener_filters],
    }


def _cluster_facts(c: Cluster, envoy: EnvoyConfig) -> dict[str, Any]:
    bind = c.upstream_bind_config
    return {
        "type": c.type,
        "upstream_bind_address": bind.source_address.address if bind and bind.source_address else None,
        "upstream_mark": bind.mark if bind else None,
        "upstream_transparent": bool(bind and bind.transparent),
        "endpoints": sorted(e.address.describe() for e in c.endpoints),
        "state": c.state,
    }


def _diff_objects(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> tuple[ObjectDiff, ...]:
    out: list[ObjectDiff] = []
    for name in list(a) + [n for n in b if n not in a]:
        if name not in b:
            out.append(ObjectDiff(name, "removed"))
        elif name not in a:
            out.append(ObjectDiff(name, "added"))
        else:
            changes = tuple(FieldChange(k, a[name][k], b[name].get(k)) for k in a[name] if a[name][k] != b[name].get(k))
            if changes:
                out.append(ObjectDiff(name, "changed", changes))
    return tuple(out)


def diff_envoy(a: EnvoyConfig | None, b: EnvoyConfig | None) -> EnvoyDiff:
    """Listeners and clusters added, removed or changed (address, filter chains, use_original_dst, original_src
    mark, upstream bind address, cluster type, endpoints ...)."""

    def listeners(c: EnvoyConfig | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for lst in c.listeners if c is not None else ():
            key = lst.name if lst.state == "active" else f"{lst.name} ({lst.state})"
            out.setdefault(key, _listener_facts(lst))
        return out

    def clusters(c: EnvoyConfig | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cl in c.clusters if c is not None else ():
            out.setdefault(cl.name, _cluster_facts(cl, c))  # type: ignore[arg-type]
        return out

    return EnvoyDiff(
        _diff_objects(listeners(a), listeners(b)),
        _diff_objects(clusters(a), clusters(b)),
        (a is not None, b is not None),
    )


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------


def connection_key(conn: Mapping[str, Any]) -> tuple[str, ...]:
    """What identifies a connection: direction plus client/port (inbound) or dst/app uid/gid (outbound)."""
    if conn.get("direction") == "outbound":
        return ("outbound", str(conn.get("dst")), str(conn.get("app_uid")), str(conn.get("app_gid")))
    return (str(conn.get("direction")), str(conn.get("client")), str(conn.get("port")))


def _verdict_line(story: Mapping[str, Any]) -> str:
    """The stored one-line verdict, or the engine's verdict line of the stored story (results from before lines
    were stored)."""
    line = story.get("verdict_line")
    if line:
        return str(line)
    try:
        return verdict_line(Story.from_dict(dict(story)))
    except (KeyError, TypeError, ValueError):  # a story stored in an older shape: its summary's first clause
        return str(story.get("summary") or "").split(" - ")[0]


def diff_verdicts(
    stories_a: Sequence[Mapping[str, Any]], stories_b: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Pair the stored stories by connection; one item per connection of either side.

    Items: `connection`, `status` ("both", "only_before", "only_after"), `number_before`/`number_after` (1-based or
    None), `before`/`after` (verdict lines), `before_verdict`/`after_verdict`, `changed`, `changed_fields`.
    """
    index_b: dict[tuple[str, ...], list[int]] = {}
    for j, s in enumerate(stories_b):
        index_b.setdefault(connection_key(s.get("connection") or {}), []).append(j)
    used: set[int] = set()
    out: list[dict[str, Any]] = []

    def item(
        a: Mapping[str, Any] | None, na: int | None, b: Mapping[str, Any] | None, nb: int | None
    ) -> dict[str, Any]:
        va = dict(a.get("verdict") or {}) if a is not None else None
        vb = dict(b.get("verdict") or {}) if b is not None else None
        la = _verdict_line(a) if a is not None else None
        lb = _verdict_line(b) if b is not None else None
        status = "both" if a is not None and b is not None else ("only_before" if b is None else "only_after")
        fields = changed_fields(va, vb)
        conn = (a or b or {}).get("connection") or {}
        return {
            "connection": dict(conn),
            "status": status,
            "number_before": na,
            "number_after": nb,
            "before": la,
            "after": lb,
            "before_verdict": va,
            "after_verdict": vb,
            "changed": status != "both" or va != vb or la != lb,
            "changed_fields": fields if status == "both" else [],
        }

    for i, s in enumerate(stories_a):
        cands = [j for j in index_b.get(connection_key(s.get("connection") or {}), []) if j not in used]
        if cands:
            used.add(cands[0])
            out.append(item(s, i + 1, stories_b[cands[0]], cands[0] + 1))
        else:
            out.append(item(s, i + 1, None, None))
    for j, s in enumerate(stories_b):
        if j not in used:
            out.append(item(None, None, s, j + 1))
    return out


# --------------------------------------------------------------------------
# Whole evidence
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinesDiff:
    """Policy rules, routes or sysctls: entries only in a, only in b (explained)."""

    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"removed": list(self.removed), "added": list(self.added)}


def _set_diff(a: list[str], b: list[str]) -> LinesDiff:
    return LinesDiff(tuple(x for x in a if x not in b), tuple(x for x in b if x not in a))


@dataclass(frozen=True)
class AnalysisDiff:
    rulesets: tuple[RulesetDiff, ...]
    envoy: EnvoyDiff
    verdicts: tuple[dict[str, Any], ...]
    ip_rules: LinesDiff = field(default_factory=LinesDiff)
    routes: LinesDiff = field(default_factory=LinesDiff)
    sysctls: tuple[FieldChange, ...] = ()
    errors: tuple[ParseError, ...] = ()
    other: tuple[FieldChange, ...] = ()  # pod IP, proxy uid/gid
    # what was assumed where one side lacks a piece of evidence
    notes: tuple[str, ...] = ()

    def ruleset(self, family: str) -> RulesetDiff | None:
        return next((r for r in self.rulesets if r.family == family), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": [e.to_dict() for e in self.errors],
            "rulesets": [r.to_dict() for r in self.rulesets],
            "ip_rules": self.ip_rules.to_dict(),
            "routes": self.routes.to_dict(),
            "sysctls": [c.to_dict() for c in self.sysctls],
            "envoy": self.envoy.to_dict(),
            "verdicts": list(self.verdicts),
            "verdicts_changed": sum(1 for v in self.verdicts if v["changed"]),
            "other": [c.to_dict() for c in self.other],
            "notes": list(self.notes),
        }


def _envoy_of(text: str | None, side: str, errors: list[ParseError]) -> EnvoyConfig | None:
    if not text:
        return None
    from meshviz.engine.envoy.parser import parse_config_dump

    r = parse_config_dump(text, source=f"{side}: envoy")
    errors.extend(r.errors)
    return r.config


def diff_evidence(
    a: Evidence,
    b: Evidence,
    stories_a: Sequence[Mapping[str, Any]] = (),
    stories_b: Sequence[Mapping[str, Any]] = (),
) -> AnalysisDiff:
    """Everything that differs between two analyses' evidence, and their verdicts (stored stories)."""
    errors: list[ParseError] = []
    pa = parse_iptables(a.iptables, source="before: iptables")
    pb = parse_iptables(b.iptables, source="after: iptables")
    errors += pa.errors + pb.errors
    families = [f for f in (Family.IPV4, Family.IPV6) if pa.ruleset(f) is not None or pb.ruleset(f) is not None]
    rulesets = tuple(diff_rulesets(pa.ruleset(f), pb.ruleset(f)) for f in families)

    notes: list[str] = []

    def rules(ev: Evidence, side: str) -> list[str]:
        if not ev.ip_rule:
            if not (a.ip_rule or b.ip_rule):
                return []
            # a pod shows these unless someone added rules: compare against them, and say so
            notes.append(f"{side}: no `ip rule` output; compared with a new namespace's default rules")
            return [explain_policy_rule(x) for x in default_policy_rules(Family.IPV4)]
        r = parse_ip_rules(ev.ip_rule, source=f"{side}: ip-rule")
        errors.extend(r.errors)
        return [explain_policy_rule(x) for x in r.rules]

    def routes(ev: Evidence, side: str) -> list[str]:
        if not ev.ip_route:
            if a.ip_route or b.ip_route:
                notes.append(f"{side}: no `ip route` output; its routes are unknown, so they are not compared")
            return []
        r = parse_ip_routes(ev.ip_route, source=f"{side}: ip-route")
        errors.extend(r.errors)
        return [explain_route(x) for x in r.routes]

    def sysctls(ev: Evidence, side: str) -> dict[str, str]:
        if not ev.sysctl:
            return {}
        r = parse_sysctls(ev.sysctl, source=f"{side}: sysctl")
        errors.extend(r.errors)
        return dict(r.sysctls.values)

    sa, sb = sysctls(a, "before"), sysctls(b, "after")
    sysctl_changes = tuple(
        FieldChange(k, sa.get(k), sb.get(k))
        for k in list(sa) + [k for k in sb if k not in sa]
        if sa.get(k) != sb.get(k)
    )
    other = tuple(
        FieldChange(f, getattr(a, f), getattr(b, f))
        for f in ("pod_ip", "proxy_uid", "proxy_gid", "app_ports")
        if getattr(a, f) != getattr(b, f)
    )
    envoy = diff_envoy(_envoy_of(a.envoy, "before", errors), _envoy_of(b.envoy, "after", errors))
    ip_rules = _set_diff(rules(a, "before"), rules(b, "after"))
    route_lists = (routes(a, "before"), routes(b, "after"))
    if not a.ip_route or not b.ip_route:
        route_lists = ([], [])
    return AnalysisDiff(
        rulesets=rulesets,
        envoy=envoy,
        verdicts=tuple(diff_verdicts(stories_a, stories_b)),
        ip_rules=ip_rules,
        routes=_set_diff(*route_lists),
        sysctls=sysctl_changes,
        errors=tuple(errors),
        other=other,
        notes=tuple(notes),
    )


__all__ = [
    "AnalysisDiff",
    "ChainDiff",
    "EnvoyDiff",
    "RuleChange",
    "RulesetDiff",
    "connection_key",
    "diff_envoy",
    "diff_evidence",
    "diff_rulesets",
    "diff_verdicts",
]
