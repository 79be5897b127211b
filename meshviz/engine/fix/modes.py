"""The same pod in the other interception mode.

From a pod's evidence, infer the istio-iptables settings behind its rules
(`settings_from_rules`; for a native nftables pod, `fix.nft.settings_from_nft`),
regenerate the rules in the other mode with the Istio generator
(`meshviz.engine.istio`: iptables, or nftables replacing the pod's Istio nft
tables), and change what Istio changes with it:
Envoy's listeners (TPROXY: `transparent` and `original_src` with the pod's TPROXY
mark), the policy route for that mark and table (Istio's defaults: `ip rule fwmark
1337 lookup 133`, `ip route local default dev lo table 133`) and the sidecar's
identity (REDIRECT: the uid the rules exempt; TPROXY: root, the same gid
with NET_ADMIN).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from functools import lru_cache

from meshviz.engine.core.model import Family
from meshviz.engine.envoy.patch import to_mode
from meshviz.engine.evidence.profile import tproxy_mark_of
from meshviz.engine.fix.nft import (
    generate_for,
    istio_nft_ruleset,
    replacement_fragment,
    settings_from_nft,
    with_fragment,
)
from meshviz.engine.istio.settings import CaptureSettings, InterceptionMode
from meshviz.engine.netfilter.model import Chain, Rule, Ruleset, rule_dports
from meshviz.engine.pipeline.evidence import Evidence, profile_of
from meshviz.engine.pipeline.parsecache import rules_once
from meshviz.engine.sim.snapshot import Snapshot


def _chain(rs: Ruleset, table: str, name: str) -> Chain | None:
    t = rs.table(table)
    return t.chain(name) if t else None


def _to_port(rule: Rule) -> int | None:
    t = rule.target
    if t is None:
        return None
    for key in ("to-ports", "to-port", "on-port"):
        o = t.option(key)
        if o is not None and o.values:
            return int(o.values[0].split("-")[0])
    return None


def _owner_ids(rule: Rule, option: str) -> list[str]:
    return [
        o.values[0]
        for m in rule.matches
        if m.module == "owner"
        for o in m.options
        if o.name == option and not o.negated and o.values
    ]


def settings_from_rules(iptables: str, notes: list[str]) -> CaptureSettings:
    """Infer the istio-iptables settings behind a pod's rules (what the comparison keeps constant)."""
    r = rules_once(iptables)
    v4 = next((rs for rs in r.rulesets if rs.family == Family.IPV4), None)
    base = CaptureSettings()
    if v4 is None:
        notes.append("no IPv4 rules: using istio-iptables defaults")
        return base
    kw: dict[str, object] = {}
    # TPROXY is a mangle target (the parser refuses it in any other table): a node's 80,000 nat and filter rules
    # need not be built to look for it
    tproxy = any(
        rule.target is not None and rule.target.name == "TPROXY"
        for t in v4.tables
        if t.name == "mangle"
        for c in t.chains
        for rule in c.rules
    )
    kw["interception_mode"] = InterceptionMode.TPROXY if tproxy else InterceptionMode.REDIRECT
    red = _chain(v4, "nat", "ISTIO_REDIRECT")
    if red and red.rules and (p := _to_port(red.rules[0])):
        kw["proxy_port"] = p
    cap = _chain(v4, "mangle", "ISTIO_TPROXY") if tproxy else _chain(v4, "nat", "ISTIO_IN_REDIRECT")
    if cap and cap.rules and (p := _to_port(cap.rules[0])):
        kw["inbound_capture_port"] = p
    inbound = _chain(v4, "mangle" if tproxy else "nat", "ISTIO_INBOUND")
    if inbound is not None:
        excluded: list[int] = []
        included: list[int] = []
        catch_all = False
        target_chain = "ISTIO_TPROXY" if tproxy else "ISTIO_IN_REDIRECT"
        for rule in inbound.rules:
            t = rule.target.name if rule.target else ""
            ports = rule_dports(rule)
            if t == "RETURN" and ports and not rule.in_iface and not _owner_ids(rule, "uid-owner"):
                excluded += ports
            elif t == target_chain:
                if ports:
                    included += ports
                else:
                    catch_all = True
        tunnel = base.inbound_tunnel_port
        excluded = [p for p in excluded if p != tunnel]
        if catch_all:
            kw["inbound_ports_include"] = "*"
            status = tuple(p for p in base.cni_status_ports if p in excluded)
            kw["inbound_ports_exclude"] = tuple(p for p in excluded if p not in status)
            if status:
                notes.append(f"ports {', '.join(map(str, status))} are excluded as the istio-cni plugin does")
        elif included:
            kw["inbound_ports_include"] = tuple(included)
    else:
        notes.append("the rules have no ISTIO_INBOUND chain: assuming no inbound capture")
    out = _chain(v4, "nat", "ISTIO_OUTPUT")
    if out is not None:
        uids = [
            u
            for rule in out.rules
            if rule.target and rule.target.name == "RETURN" and not rule.out_iface
            for u in _owner_ids(rule, "uid-owner")
        ]
        gids = [
            g
            for rule in out.rules
            if rule.target and rule.target.name == "RETURN" and not rule.out_iface
            for g in _owner_ids(rule, "gid-owner")
        ]
        if uids:
            kw["proxy_uids"] = tuple(dict.fromkeys(uids))
        if gids:
            kw["proxy_gids"] = tuple(dict.fromkeys(gids))
    # The TPROXY mark and its route table, as the rules and `ip rule` say (the pod's profile reads both).
    snap = _snapshot_for_marks(iptables)
    tm = tproxy_mark_of(snap)
    if tm is not None:
        kw["inbound_tproxy_mark"] = tm[0]
    fields = {f.name for f in dataclasses.fields(CaptureSettings)}
    return replace(base, **{k: v for k, v in kw.items() if k in fields})  # type: ignore[arg-type]


def _snapshot_for_marks(iptables: str) -> Snapshot:
    r = rules_once(iptables)
    return Snapshot(rulesets=r.rulesets)


def _generate(settings: CaptureSettings) -> tuple[str, list[str], list[str]]:
    """Rules (iptables-restore text, all families), `ip rule` and `ip route` commands for these settings."""
    rules, ip_rule, ip_route = _generated(settings)
    return rules, list(ip_rule), list(ip_route)


@lru_cache(maxsize=16)
def _generated(settings: CaptureSettings) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """`_generate`'s work, once per settings: the comparison, the repairs and their `ip` commands each ask for the
    same pod's rules in the other mode, and most pods share Istio's settings."""
    from meshviz.engine.istio.generator import generate
    from meshviz.engine.netfilter.render import render_ruleset

    g = generate(settings)
    if g.errors:
        raise ValueError(f"the Istio generator rejected the inferred settings: {g.errors[0]}")
    return "".join(render_ruleset(rs) for rs in g.rulesets), tuple(g.ip_rule), tuple(g.ip_route)


def settings_in_mode(ev: Evidence, mode: str, notes: list[str]) -> CaptureSettings:
    """The settings behind the pod's Istio rules (its nft tables when its capture is native nftables, else its
    iptables rules), in interception `mode`."""
    rs = istio_nft_ruleset(ev)
    settings = settings_from_nft(rs, notes) if rs is not None else settings_from_rules(ev.iptables, notes)
    return replace(settings, interception_mode=InterceptionMode(mode))


def mode_fragment(ev: Evidence, mode: str) -> str | None:
    """For a pod whose capture is native nftables: the `nft -f` fragment that replaces its Istio tables by what
    Istio's nftables generator programs in `mode` (every other table kept).  None for an iptables pod."""
    if istio_nft_ruleset(ev) is None:
        return None
    return replacement_fragment(generate_for(settings_in_mode(ev, mode, [])).script)


def evidence_in_mode(ev: Evidence, mode: str, notes: list[str]) -> Evidence:
    """The same pod as Istio would set it up in `mode` (REDIRECT or TPROXY), in the backend its capture uses:
    iptables rules regenerated whole, or, for a native nftables pod, its Istio nft tables replaced (the iptables
    rules, if any, kept as they are)."""
    settings = settings_in_mode(ev, mode, notes)
    target = settings.interception_mode
    nftables = ev.nftables
    if istio_nft_ruleset(ev) is not None:
        g = generate_for(settings)
        rules = ev.iptables
        nftables = with_fragment(ev, replacement_fragment(g.script)).nftables
        ip_rule, ip_route = list(g.ip_rule), list(g.ip_route)
    else:
        rules, ip_rule, ip_route = _generate(settings)
    rule_text = (ev.ip_rule or "").rstrip("\n")
    route_text = (ev.ip_route or "").rstrip("\n")
    if ip_rule:
        rule_text += "\n" + "\n".join(f"ip {c}" for c in ip_rule)
    if ip_route:
        route_text += "\n" + "\n".join(f"ip {c}" for c in ip_route)
    envoy = to_mode(ev.envoy, mode, settings.inbound_tproxy_mark).text if ev.envoy else None
    tproxy = target == InterceptionMode.TPROXY
    # Istio runs a TPROXY sidecar as root; a REDIRECT one as the uid its rules exempt.
    uid = 0 if tproxy else int(settings.proxy_uids[0]) if settings.proxy_uids[0].isdigit() else None
    gid = int(settings.proxy_gids[0]) if settings.proxy_gids and settings.proxy_gids[0].isdigit() else None
    return replace(
        ev,
        iptables=rules,
        nftables=nftables,
        ip_rule=(rule_text + "\n") if ip_rule or ev.ip_rule else None,
        ip_route=(route_text + "\n") if ip_route or ev.ip_route else None,
        envoy=envoy,
        proxy_uid=uid,
        proxy_gid=gid,
        proxy_net_admin=tproxy,
    )


def mode_of(ev: Evidence) -> str:
    """REDIRECT or TPROXY: the pod profile's reading of the rules (evidence.profile.interception_mode, the one place
    the mode is read); rules that capture nothing count as REDIRECT, Istio's default."""
    return "TPROXY" if profile_of(ev).mode == "TPROXY" else "REDIRECT"


def generated_ip_commands(ev: Evidence, mode: str) -> list[str]:
    """The `ip` commands (rule, then route) Istio installs for this pod in `mode`."""
    settings = settings_in_mode(ev, mode, [])
    if istio_nft_ruleset(ev) is not None:
        g = generate_for(settings)
        return list(g.ip_rule) + list(g.ip_route)
    _, ip_rule, ip_route = _generate(settings)
    return ip_rule + ip_route
