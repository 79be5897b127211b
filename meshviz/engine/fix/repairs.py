"""The repairs a pod's evidence may need, read from what it has: CONNMARK save/restore, the TPROXY policy rule and
local route, original_src's mark, route_localnet, the switch to TPROXY. Each is applied to the evidence, never
guessed: the plans re-simulate it. A pod whose Istio capture is native nftables gets its firewall repairs as nft
rules in Istio's tables and its switch as Istio's nft tables (`fix.nft`); its iptables rules are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from meshviz.engine.core.model import Family
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.envoy.patch import patch_dump
from meshviz.engine.fix.modes import mode_of
from meshviz.engine.fix.nft import istio_nft_ruleset, nft_firewall_repairs
from meshviz.engine.fix.result import NFT_FRAGMENT, Artifact, Repair, _parsed, _parsed6, _sysctls
from meshviz.engine.netfilter.model import BUILTIN_CHAINS, Chain, Rule, Ruleset, Table
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.evidence import Evidence, profile_of
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import RouteType, RuleAction

# --------------------------------------------------------------------------
# What the evidence has
# --------------------------------------------------------------------------


def _ruleset(ev: Evidence, fam: Family) -> Ruleset | None:
    if fam == Family.IPV6 and ev.ip6tables is not None:
        return next(iter(_parsed6(ev.ip6tables).rulesets), None)
    return next((rs for rs in _parsed(ev.iptables).rulesets if rs.family == fam), None)


def _has_rule(ev: Evidence, fam: Family, table: str, chain: str, pred: Callable[[Rule], bool]) -> bool:
    rs = _ruleset(ev, fam)
    t = rs.table(table) if rs else None
    c = t.chain(chain) if t else None
    return c is not None and any(pred(rule) for rule in c.rules)


def _has_chain(ev: Evidence, fam: Family, table: str, chain: str) -> bool:
    rs = _ruleset(ev, fam)
    t = rs.table(table) if rs else None
    return t is not None and t.chain(chain) is not None


def _target(rule: Rule, name: str, option: str | None = None) -> bool:
    t = rule.target
    return t is not None and t.name == name and (option is None or t.option(option) is not None)


def _marks(rule: Rule, module: str) -> set[int]:
    """The values a rule's `mark`/`connmark` match compares against (e.g. {1337} for `--mark 0x539`)."""
    out = set()
    for m in rule.matches:
        if m.module == module:
            for o in m.options:
                if o.name == "mark" and o.values and not o.negated:
                    out.add(int(o.values[0].split("/")[0], 0))
    return out


def _fwmark_rule(ev: Evidence, fam: Family, mark: int, table: int) -> bool:
    text = ev.ip6_rule if fam == Family.IPV6 and ev.ip6_rule is not None else ev.ip_rule
    if not text:
        return False
    rules = parse_ip_rules(text, family=Family.IPV6 if text is ev.ip6_rule else None).rules
    return any(
        r.family == fam and r.fwmark == mark and r.action == RuleAction.LOOKUP and r.table == table for r in rules
    )


def _local_default(ev: Evidence, fam: Family, table: int) -> bool:
    text = ev.ip6_route if fam == Family.IPV6 and ev.ip6_route is not None else ev.ip_route
    if not text:
        return False
    routes = parse_ip_routes(text, family=Family.IPV6 if text is ev.ip6_route else None).routes
    return any(
        r.table == table and r.type == RouteType.LOCAL and r.dst.prefixlen == 0 and Family.of(r.dst) == fam
        for r in routes
    )


def _dials_loopback(ev: Evidence) -> bool:
    """Does an inbound cluster dial a loopback endpoint (Istio < 1.10 inbound clusters)?"""
    if not ev.envoy:
        return False
    cfg = parse_config_dump(ev.envoy, source="envoy").config  # the story's parse (load_pod's source)
    return any(
        c.name.startswith("inbound|")
        and any(e.address.ip is not None and e.address.ip.is_loopback for e in c.endpoints)
        for c in cfg.clusters
    )


def _localnet(ev: Evidence) -> bool:
    return any(k.endswith(".route_localnet") and v.strip() == "1" for k, v in _sysctls(ev.sysctl))


def _original_src_mark(ev: Evidence) -> int | None:
    """The mark of virtualInbound's original_src filter: None when there is no such filter, 0 when unset."""
    if not ev.envoy:
        return None
    cfg = parse_config_dump(ev.envoy, source="envoy").config  # the story's parse (load_pod's source)
    for lst in cfg.listeners:
        if lst.state == "active" and lst.name.startswith("virtualInbound"):
            for f in lst.listener_filters:
                if f.kind == "envoy.filters.listener.original_src":
                    return f.mark or 0
    return None


# --------------------------------------------------------------------------
# Repairs
# --------------------------------------------------------------------------


def _add_iptables(ev: Evidence, fam: Family, table: str, chain: str, position: int | None, spec: str) -> Evidence:
    """Insert (position, 1-based) or append one rule into the family's ruleset and re-render that evidence."""
    builtin = chain in BUILTIN_CHAINS.get(table, ())
    decl = f":{chain} ACCEPT [0:0]" if builtin else f":{chain} - [0:0]"
    new = parse_iptables(f"*{table}\n{decl}\n-A {chain} {spec}\nCOMMIT\n", source="fix", family=fam, strict=True)
    if new.errors:
        raise ValueError(f"meshviz generated an invalid rule: {new.errors[0]}")
    rule = new.rulesets[0].table(table).chain(chain).rules[0]  # type: ignore[union-attr]
    rule = replace(rule, ref=None)
    if fam == Family.IPV6 and ev.ip6tables is not None:
        rs6 = _ruleset(ev, fam) or Ruleset(Family.IPV6, ())
        return replace(ev, ip6tables=render_ruleset(_insert(rs6, table, chain, position, rule)))
    out: list[Ruleset] = []
    found = False
    for rs in _parsed(ev.iptables).rulesets:
        if rs.family == fam:
            rs = _insert(rs, table, chain, position, rule)
            found = True
        out.append(rs)
    if not found:
        out.append(_insert(Ruleset(fam, ()), table, chain, position, rule))
    return replace(ev, iptables="".join(render_ruleset(rs) for rs in out))


def _insert(rs: Ruleset, table: str, chain: str, position: int | None, rule: Rule) -> Ruleset:
    tables = list(rs.tables)
    ti = next((i for i, t in enumerate(tables) if t.name == table), None)
    if ti is None:
        tables.append(Table(table, tuple(Chain(c, (), "ACCEPT", True) for c in BUILTIN_CHAINS[table])))
        ti = len(tables) - 1
    t = tables[ti]
    chains = list(t.chains)
    ci = next((i for i, c in enumerate(chains) if c.name == chain), None)
    if ci is None:
        chains.append(Chain(chain, (), None, False))
        ci = len(chains) - 1
    c = chains[ci]
    rules = list(c.rules)
    rules.insert(len(rules) if position is None else position - 1, rule)
    chains[ci] = replace(c, rules=tuple(rules))
    tables[ti] = replace(t, chains=tuple(chains))
    return replace(rs, tables=tuple(tables))


def _add_ip(ev: Evidence, fam: Family, which: str, commands: list[str]) -> Evidence:
    flag = "-6 " if fam == Family.IPV6 else ""
    lines = "\n".join(f"ip {flag}{c}" for c in commands)
    field = {"rule": "ip_rule", "route": "ip_route"}[which]
    if fam == Family.IPV6 and getattr(ev, "ip6_" + which) is not None:
        field = "ip6_" + which
    new = (getattr(ev, field) or "").rstrip("\n") + "\n" + lines + "\n"
    if field == "ip_rule":
        return replace(ev, ip_rule=new)
    if field == "ip6_rule":
        return replace(ev, ip6_rule=new)
    if field == "ip6_route":
        return replace(ev, ip6_route=new)
    return replace(ev, ip_route=new)


def _ip(fam: Family, command: str) -> str:
    return f"ip -6 {command}" if fam == Family.IPV6 else f"ip {command}"


def _iptables_repair(
    fam: Family, key: str, title: str, why: str, table: str, chain: str, position: int | None, spec: str
) -> Repair:
    op = f"-I {chain} {position}" if position is not None else f"-A {chain}"
    tool = "ip6tables" if fam == Family.IPV6 else "iptables"
    command = f"{tool} -t {table} {op} {spec}"
    restore = f"*{table}\n{op} {spec}\nCOMMIT\n"
    return Repair(
        key,
        title,
        why,
        lambda ev: _add_iptables(ev, fam, table, chain, position, spec),
        (
            Artifact("iptables", title, command),
            Artifact("iptables-restore", f"{title} ({tool}-restore --noflush fragment)", restore),
        ),
    )


def _envoyfilter(ev: Evidence, mark: int, existing: bool) -> str:
    """An EnvoyFilter that patches the single listener filter (applyTo LISTENER_FILTER, Istio >= 1.14):
    MERGE the mark into an existing original_src, or INSERT_AFTER original_dst when there is none."""
    labels = dict(ev.labels)
    selector = ""
    if labels:
        selector = "  workloadSelector:\n    labels:\n" + "".join(
            f"      {k}: {json.dumps(v)}\n" for k, v in sorted(labels.items())
        )
    name = f"{ev.pod_name or 'workload'}-original-src"
    ns = ev.namespace or "default"
    anchor = "envoy.filters.listener.original_src" if existing else "envoy.filters.listener.original_dst"
    op = "MERGE" if existing else "INSERT_AFTER"
    value = (
        "        typed_config:\n"
        '          "@type": type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc\n'
        f"          mark: {mark}\n"
    )
    if not existing:
        value = "        name: envoy.filters.listener.original_src\n" + value
    return (
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: EnvoyFilter\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {ns}\n"
        "spec:\n"
        f"{selector}"
        "  configPatches:\n"
        "  - applyTo: LISTENER_FILTER\n"
        "    match:\n"
        "      context: SIDECAR_INBOUND\n"
        "      listener:\n"
        "        name: virtualInbound\n"
        f"        listenerFilter: {anchor}\n"
        "    patch:\n"
        f"      operation: {op}\n"
        "      value:\n"
        f"{value}"
    )


def _kubectl_annotation(ev: Evidence, annotations: dict[str, str]) -> str:
    workload = ev.workload or "deployment/<your-workload>"
    patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    ns = f" -n {ev.namespace}" if ev.namespace else ""
    return f"kubectl{ns} patch {workload} --type merge -p '{json.dumps(patch)}'"


def candidate_repairs(ev: Evidence, fam: Family = Family.IPV4) -> tuple[list[Repair], list[str]]:
    """Every repair that could matter for preserving the client IP of a `fam` client, given what the evidence
    lacks.  The mark, route table and interface are the pod's own (meshviz.engine.evidence.profile)."""
    notes: list[str] = []
    out: list[Repair] = []
    if mode_of(ev) == "REDIRECT":
        out.append(_switch_to_tproxy(ev, notes))
        return out, notes
    prof = profile_of(ev)
    MARK, TABLE, IFACE = prof.tproxy_mark, prof.tproxy_table, prof.pod_iface
    local_default = "local ::/0" if fam == Family.IPV6 else "local default"
    mark = _original_src_mark(ev)
    if ev.envoy and (mark is None or mark != MARK):
        what = "has no original_src listener filter" if mark is None else f"sets original_src without mark {MARK}"
        out.append(
            Repair(
                "envoyfilter-original-src",
                f"EnvoyFilter: original_src with mark {MARK} on virtualInbound",
                f"Envoy's inbound listener {what}. original_src makes Envoy bind its upstream connection to the "
                f"application transparently to the client's address and set SO_MARK {MARK}; the mark is what the "
                f"PREROUTING CONNMARK rule saves on the connection so the application's replies can be routed back "
                f"to Envoy (fwmark {MARK} -> table {TABLE} -> lo). Without the mark the upstream SYN is captured again "
                f"by ISTIO_TPROXY or the reply escapes via {IFACE}.",
                lambda e: replace(e, envoy=patch_dump(e.envoy or "{}", original_src=(("virtualInbound",), MARK)).text),
                (
                    Artifact(
                        "envoyfilter",
                        f"EnvoyFilter: original_src with mark {MARK} (applyTo LISTENER_FILTER, Istio >= 1.14)",
                        _envoyfilter(ev, MARK, existing=mark is not None),
                    ),
                ),
            )
        )
    if not _fwmark_rule(ev, fam, MARK, TABLE):
        out.append(
            Repair(
                "ip-rule-fwmark",
                f"ip rule: fwmark {MARK} lookup {TABLE}",
                f"The application's replies to the client carry mark {MARK} (restored from the connection), but no "
                f"policy rule sends marked packets to table {TABLE}: they follow the main table's default route and "
                f"leave via {IFACE}, so Envoy's upstream connection never completes (503 UF).",
                lambda e: _add_ip(e, fam, "rule", [f"rule add fwmark {MARK} lookup {TABLE}"]),
                (Artifact("ip", "policy rule", _ip(fam, f"rule add fwmark {MARK} lookup {TABLE}")),),
            )
        )
    if not _local_default(ev, fam, TABLE):
        out.append(
            Repair(
                "ip-route-local-default",
                f"ip route: {local_default} dev lo table {TABLE}",
                f"Table {TABLE} must treat every destination as local so a marked reply addressed to the client is "
                "delivered on lo to Envoy's transparent socket instead of being routed out.",
                lambda e: _add_ip(e, fam, "route", [f"route add {local_default} dev lo table {TABLE}"]),
                (Artifact("ip", "local default route", _ip(fam, f"route add {local_default} dev lo table {TABLE}")),),
            )
        )
    nft_rules = istio_nft_ruleset(ev)
    if nft_rules is not None:
        # Istio's capture is native nftables: the firewall repairs are nft rules in its tables (iptables untouched).
        out += nft_firewall_repairs(nft_rules, MARK, TABLE)
    if nft_rules is None and not _has_rule(
        ev, fam, "mangle", "PREROUTING", lambda r: _target(r, "CONNMARK", "save-mark")
    ):
        out.append(
            _iptables_repair(
                fam,
                "connmark-save",
                f"CONNMARK --save-mark for mark {MARK}",
                f"Envoy's upstream SYN carries mark {MARK}; saving it on the connection (PREROUTING, after it loops "
                "back on lo) is what lets the application's replies get the mark back.",
                "mangle",
                "PREROUTING",
                None,
                f"-p tcp -m mark --mark {MARK} -j CONNMARK --save-mark",
            )
        )
    if nft_rules is None and not _has_rule(
        ev, fam, "mangle", "OUTPUT", lambda r: _target(r, "CONNMARK", "restore-mark")
    ):
        out.append(
            _iptables_repair(
                fam,
                "connmark-restore",
                "CONNMARK --restore-mark in OUTPUT",
                "The application's sockets have no mark: restoring the connection's mark in mangle OUTPUT makes the "
                f"kernel re-route its replies with mark {MARK}, into table {TABLE}.",
                "mangle",
                "OUTPUT",
                None,
                f"-p tcp -m connmark --mark {MARK} -j CONNMARK --restore-mark",
            )
        )
    if (
        nft_rules is None
        and _has_chain(ev, fam, "mangle", "ISTIO_INBOUND")
        and not _has_rule(
            ev, fam, "mangle", "ISTIO_INBOUND", lambda r: _target(r, "RETURN") and MARK in _marks(r, "mark")
        )
    ):
        out.append(
            _iptables_repair(
                fam,
                "inbound-mark-return",
                f"RETURN for mark {MARK} at the top of ISTIO_INBOUND",
                f"Envoy's own upstream connection (mark {MARK}) loops back on lo into PREROUTING; without this RETURN "
                "ISTIO_INBOUND hands it to ISTIO_TPROXY and Envoy captures its own connection.",
                "mangle",
                "ISTIO_INBOUND",
                1,
                f"-p tcp -m mark --mark {MARK} -j RETURN",
            )
        )
    if fam == Family.IPV4 and _dials_loopback(ev) and not _localnet(ev):
        out.append(
            Repair(
                "route-localnet",
                "sysctl net.ipv4.conf.all.route_localnet=1",
                "Envoy dials the application on a loopback address (127.0.0.1), so the application answers from "
                "127.0.0.1 to the client's address. The kernel refuses to route a loopback source out of a "
                "non-loopback device unless route_localnet=1, and the reply's first route lookup (before CONNMARK "
                f"restores mark {MARK} and re-routes it to table {TABLE}) is out of {IFACE}: the SYN-ACK is never sent. "
                "Better still: let Envoy dial the pod IP (Istio >= 1.10).",
                lambda e: replace(e, sysctl=(e.sysctl or "").rstrip("\n") + "\nnet.ipv4.conf.all.route_localnet = 1\n"),
                (
                    Artifact(
                        "sysctl", "allow loopback sources to be routed", "sysctl -w net.ipv4.conf.all.route_localnet=1"
                    ),
                ),
            )
        )
    if ev.proxy_net_admin is False:
        out.append(
            Repair(
                "net-admin",
                "give the sidecar CAP_NET_ADMIN",
                "original_src needs IP_TRANSPARENT and SO_MARK on Envoy's upstream socket, which require "
                "CAP_NET_ADMIN; Istio's TPROXY mode runs the sidecar as uid 0 with NET_ADMIN.",
                lambda e: replace(e, proxy_net_admin=True, proxy_uid=0),
                (
                    Artifact(
                        "kubectl-patch",
                        "TPROXY interception (Istio grants NET_ADMIN and runs the proxy as root)",
                        _kubectl_annotation(ev, {"sidecar.istio.io/interceptionMode": "TPROXY"}),
                    ),
                ),
            )
        )
    return out, notes


def _switch_to_tproxy(ev: Evidence, notes: list[str]) -> Repair:
    from meshviz.engine.fix.modes import evidence_in_mode, generated_ip_commands, mode_fragment

    try:
        switched: Evidence | None = evidence_in_mode(ev, "TPROXY", notes)
    except ValueError:
        switched = None  # applying the repair says why (the plans record it as "cannot be applied")
    ip_cmds = generated_ip_commands(ev, "TPROXY")
    fragment = mode_fragment(ev, "TPROXY")
    artifacts = [
        Artifact(
            "kubectl-patch",
            "annotate the workload for TPROXY",
            _kubectl_annotation(ev, {"sidecar.istio.io/interceptionMode": "TPROXY"}),
        )
    ]
    if fragment is not None:
        artifacts.append(
            Artifact(
                NFT_FRAGMENT,
                "Istio's TPROXY nft tables in place of the pod's istio-proxy-* tables, every other table kept "
                "(nft -f; what istio-init programs when the pod restarts with the annotation)",
                fragment,
            )
        )
    if ip_cmds:
        artifacts.append(
            Artifact(
                "ip",
                "the policy routing Istio installs in TPROXY mode (for reference; istio-init does it)",
                "\n".join(f"ip {c}" for c in ip_cmds),
            )
        )
    return Repair(
        "switch-to-tproxy",
        "switch the workload to TPROXY interception",
        "In REDIRECT mode the kernel rewrites the client's SYN to Envoy's 15006 (nat REDIRECT) and Envoy opens a "
        "new connection to the application from 127.0.0.6 (or 127.0.0.1 before Istio 1.10): the application can "
        "never see the client's address. With `sidecar.istio.io/interceptionMode: TPROXY` Istio captures inbound "
        "traffic with mangle TPROXY instead, adds the original_src listener filter (with the TPROXY mark) so Envoy "
        "connects to the application from the client's address, installs the policy rule and route for that mark "
        "(Istio's defaults: `ip rule fwmark 1337 lookup 133` / `ip route local default dev lo table 133`) and the "
        "CONNMARK rules so the replies return to Envoy. Cost: the sidecar runs as root (uid 0) with NET_ADMIN, and "
        "`owner` matches see uid 0 instead of the proxy uid.",
        lambda e: switched if e is ev and switched is not None else evidence_in_mode(e, "TPROXY", []),
        tuple(artifacts),
    )


ALTERNATIVES = [
    {
        "key": "x-forwarded-for",
        "title": "keep REDIRECT and read X-Forwarded-For (HTTP only)",
        "tradeoffs": "No NET_ADMIN or root in the sidecar and no policy routing. Works only for HTTP; the "
        "application must read the header, and the mesh's `numTrustedProxies` (gateway topology) decides whether "
        "the header can be trusted. The socket peer stays 127.0.0.6.",
        "verified": False,
        "why_unverified": "it does not change the address the application's socket sees, which is what meshviz "
        "simulates; the client IP travels in the request instead",
    },
    {
        "key": "proxy-protocol",
        "title": "keep REDIRECT and send PROXY protocol to the application",
        "tradeoffs": "Works for any TCP protocol without kernel changes; the application must parse a PROXY "
        "protocol header (an EnvoyFilter adding a proxy_protocol upstream transport socket to the inbound "
        "cluster). The socket peer stays 127.0.0.6.",
        "verified": False,
        "why_unverified": "the client IP travels in the payload, not in the socket address meshviz simulates",
    },
]
