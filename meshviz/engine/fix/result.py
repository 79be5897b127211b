"""A fix's result: the repairs (each with its artifacts: iptables/ip/nft commands, an EnvoyFilter, annotations), the
verdicts before and after, and the patched evidence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.parser import IptablesParseResult
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.pipeline.parsecache import rules_once
from meshviz.engine.routing.defaults import default_policy_rules
from meshviz.engine.routing.flow import render_route, render_rule
from meshviz.engine.routing.model import TABLE_IDS, PolicyRule

GOALS = ("preserve-client-ip",)

#: The artifact kind of an `nft -f` fragment (an nft pod's repairs; `nft` is one `nft add rule ...` command).
NFT_FRAGMENT = "nft-f"


@dataclass(frozen=True)
class Artifact:
    kind: str  # kubectl-patch | envoyfilter | iptables | iptables-restore | nft | nft-f | ip | sysctl
    title: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "title": self.title, "content": self.content}


@dataclass(frozen=True)
class Repair:
    key: str
    title: str
    why: str  # one paragraph: why it is needed, which finding it answers
    apply: Callable[[Evidence], Evidence]
    artifacts: tuple[Artifact, ...]


@dataclass
class FixResult:
    goal: str
    client: str
    port: int
    diagnosis: list[dict[str, Any]]
    before: dict[str, Any]
    after: dict[str, Any] | None
    works: bool
    repairs: list[Repair]
    dropped: list[str]
    alternatives: list[dict[str, Any]]
    patched: Evidence | None
    after_summary: str = ""
    notes: list[str] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)  # every candidate plan re-simulated, and its outcome
    #: The firewall the repairs' rules are for: `iptables` (iptables/iptables-restore artifacts) or `nftables`
    #: (the pod's Istio capture is native nft: `nft` commands and `nft -f` fragments).
    backend: str = "iptables"

    def nft_fragment(self) -> str | None:
        """Every nft repair as one `nft -f` fragment, in order (None when no repair is an nft one)."""
        parts = [a.content for r in self.repairs for a in r.artifacts if a.kind == NFT_FRAGMENT]
        return "".join(p if p.endswith("\n") else p + "\n" for p in parts) if parts else None

    def to_dict(self) -> dict[str, Any]:
        patches = [
            {"key": r.key, "title": r.title, "why": r.why, "artifacts": [a.to_dict() for a in r.artifacts]}
            for r in self.repairs
        ]
        out: dict[str, Any] = {
            "goal": self.goal,
            "connection": {"client": self.client, "port": self.port},
            "diagnosis": self.diagnosis,
            "works": self.works,
            "patches": patches,
            "not_needed": self.dropped,
            "alternatives": self.alternatives,
            "before": self.before,
            "after": self.after,
            "after_summary": self.after_summary,
            "notes": self.notes,
            "tried": self.tried,
            "backend": self.backend,
            "nft_fragment": self.nft_fragment(),
        }
        if self.patched is not None:
            out["patched"] = patched_evidence(self.patched, self.repairs)
        return out


def patched_evidence(ev: Evidence, repairs: list[Repair]) -> dict[str, Any]:
    """The complete patched evidence, machine-applicable to a fresh pod.

    `iptables_save` / `ip6tables_save` are whole rulesets for iptables-restore; `nftables` is the pod's nft
    ruleset as listed with the nft repairs appended (an `nft -f` script: block syntax, then commands), None
    without nft evidence.  `ip_rule` / `ip6_rule` hold every policy rule the pod has beyond the kernel's defaults (the ones it already had and the new ones) as `rule add`
    commands with explicit priorities; `ip_route` / `ip6_route` every route the kernel does not create by itself
    from the interfaces' addresses, as idempotent `route replace` commands (IPv6 ones start with `-6`: each is
    the arguments of one `ip` command).  `repairs` is kept for the artifacts.
    """
    from meshviz.engine.pipeline.load import load_snapshot

    r = _parsed(ev.iptables)
    v4 = "".join(render_ruleset(rs) for rs in r.rulesets if rs.family == Family.IPV4)
    v6 = "".join(render_ruleset(rs) for rs in r.rulesets if rs.family == Family.IPV6)
    if ev.ip6tables is not None:
        v6 = "".join(render_ruleset(rs) for rs in _parsed6(ev.ip6tables).rulesets)
    snap = load_snapshot(
        None, ev.ip_rule, ev.ip_route, None, ip6_rule=ev.ip6_rule, ip6_route=ev.ip6_route, pod_ip=ev.pod_ip
    ).snapshot
    defaults = {_rule_key(d) for f in (Family.IPV4, Family.IPV6) for d in default_policy_rules(f)}
    rules = {Family.IPV4: [], Family.IPV6: []}  # type: dict[Family, list[str]]
    for pr in sorted(snap.routing.rules, key=lambda x: x.priority):
        if _rule_key(pr) in defaults:
            continue
        body = render_rule(replace(pr, table_name=None)).split(":\t", 1)[1]
        six = "-6 " if pr.family == Family.IPV6 else ""
        rules[pr.family].append(f"{six}rule add pref {pr.priority} {body}")
    routes = {Family.IPV4: [], Family.IPV6: []}  # type: dict[Family, list[str]]
    for rt in snap.routing.routes:
        if rt.proto == "kernel" and rt.table in (TABLE_IDS["local"], TABLE_IDS["main"]):
            continue  # the kernel adds these itself when the interface gets its address
        if rt.table == TABLE_IDS["local"] and rt.dev == "lo" and rt.dst.network_address.is_loopback:
            continue
        text = render_route(replace(rt, table_name=None, proto=None if rt.proto == "kernel" else rt.proto))
        if rt.table != TABLE_IDS["main"] and " table " not in f" {text} ":
            text += f" table {rt.table}"
        six = "-6 " if Family.of(rt.dst) == Family.IPV6 else ""
        routes[Family.of(rt.dst)].append(f"{six}route replace {text}")
    return {
        "iptables_save": v4,
        "ip6tables_save": v6 or None,
        "ip_rule": rules[Family.IPV4],
        "ip6_rule": rules[Family.IPV6],
        "ip_route": routes[Family.IPV4],
        "ip6_route": routes[Family.IPV6],
        "sysctl": dict(_sysctls(ev.sysctl)),
        "nftables": ev.nftables,
        "envoy_config_dump": json.loads(ev.envoy) if ev.envoy else None,
        "proxy_uid": ev.proxy_uid,
        "proxy_gid": ev.proxy_gid,
    }


def _rule_key(rule: PolicyRule) -> tuple[Any, ...]:
    return (rule.family, rule.priority, rule.action, rule.table, rule.src, rule.dst, rule.fwmark, rule.iif, rule.oif)


def _sysctls(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    from meshviz.engine.routing.sysctl import parse_sysctls

    return list(parse_sysctls(text).sysctls.values)


def _parsed(iptables: str) -> IptablesParseResult:
    """The evidence's rules, parsed once per text (the repairs ask several questions of the same rules; the
    comparison reads the same parse: parsecache.rules_once)."""
    return rules_once(iptables)


def _parsed6(ip6tables: str) -> IptablesParseResult:
    return rules_once(ip6tables, family=Family.IPV6)
