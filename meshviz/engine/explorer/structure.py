"""The pod's configuration as a structure: the rule table and a Graphviz map of it.

    rows = rule_rows(ruleset, hits_from_stories(stories))       # one RuleRow per rule, with its explanation
    dot = structure_dot(snapshot, envoy, hits, highlight=[("mangle", "ISTIO_TPROXY", 1)], link=url_for)
    svg = render_structure_svg(dot)                               # Graphviz, bounded in time and size

`stories` are the STORED story dicts (`Analysis.results["stories"]`: `Story.to_dict()` plus "connection" and
"verdict_line"); connection numbers are 1-based positions in that list.  Hits are keyed (table, chain, 1-based
index) without a family: the traces are of the pod's own family, so pass them with that family's ruleset only.

The DOT has three clusters: netfilter (hooks PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING in kernel order, each
with its tables in priority order; user-defined chains per table; each chain a node listing its rules with their hit
counts; jump/goto edges leave from the rule that jumps and are labelled with its index), policy routing (ip rules ->
routing tables with their routes) and Envoy (listeners -> filter chains -> clusters -> endpoints, with the upstream
bind address and the original_src mark).  TPROXY/REDIRECT rules are linked to the Envoy listener on their port (or
to a red "nothing listens" node), and an original_src mark to the ip rules whose fwmark matches it.

Every node, and every rule row, has an `id` (see `node_id`: `chain:mangle:ISTIO_INBOUND`,
`rule:mangle:ISTIO_INBOUND:3`, `hook:PREROUTING`, `iprule:32765`, `rtable:133`, `route:133:1`,
`listener:virtualInbound`, `filterchain:virtualInbound:3`, `cluster:inbound|8083||`), so a page can find and
highlight them in the SVG: a node is `<g id="ID" class="node">`; a rule or route row is a table cell, which Graphviz
writes as the link `<g id="a_ID">` (rows always link: to `link(id)`, else to `#ID`).  `link(id) -> URL` (optional)
makes nodes and rows clickable.  All user text is escaped with
render.py's `esc`/`wrapped`: comments with `<script>` or DOT metacharacters render inert.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from meshviz.engine.core.model import Family
from meshviz.engine.envoy.model import (
    HTTP_CONNECTION_MANAGER,
    ORIGINAL_SRC,
    TCP_PROXY,
    Cluster,
    EnvoyConfig,
    FilterChain,
    Listener,
)
from meshviz.engine.explorer.rule_table import RuleKey, RuleRow, hits_from_stories, rule_rows, steps_for_rule
from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.model import Chain, Rule, Ruleset, Table
from meshviz.engine.netfilter.render import render_rule
from meshviz.engine.netfilter.spec import TARGETS
from meshviz.engine.nftables.explain import explain_nft_rule
from meshviz.engine.nftables.hooks import is_iptables_nft
from meshviz.engine.nftables.model import AnonSet, NftChain, NftRule, NftTable, SetRef, Vmap
from meshviz.engine.nftables.model import Verdict as NftVerdict
from meshviz.engine.render.dot import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, RED, esc, render, wrapped
from meshviz.engine.routing.explain import explain_policy_rule, explain_route
from meshviz.engine.routing.model import TABLE_IDS
from meshviz.engine.sim.snapshot import Snapshot

#: Netfilter hooks in kernel order, each with its tables in priority order (raw -300, mangle -150, nat -100 for
#: DNAT, filter 0, security 50, nat 100 for SNAT).
HOOK_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PREROUTING", ("raw", "mangle", "nat")),
    ("INPUT", ("mangle", "filter", "security", "nat")),
    ("FORWARD", ("mangle", "filter", "security")),
    ("OUTPUT", ("raw", "mangle", "nat", "filter", "security")),
    ("POSTROUTING", ("mangle", "nat")),
)
#: How packets move between hooks (routing decides which way).
HOOK_FLOW = (
    ("PREROUTING", "INPUT", "routing: local"),
    ("PREROUTING", "FORWARD", "routing: forward"),
    ("FORWARD", "POSTROUTING", ""),
    ("OUTPUT", "POSTROUTING", "routing"),
)
MAX_ROWS = 60  # rules shown per chain node; the rest are summarised (edges still come from the node)
MAX_CHAINS_PER_LISTENER = 40
MAX_CLUSTERS_PER_CHAIN = 12
MAX_ENDPOINTS = 6
#: Listeners and clusters drawn whole; a bigger dump (a mesh without a Sidecar resource: thousands of each) is drawn
#: as the listeners that own a socket, with the clusters their filter chains lead to, and the rest counted.
MAX_ENVOY_OBJECTS = 200
MAX_SUMMARY_LISTENERS = 24  # the socket-owning listeners drawn of such a dump (a sidecar has a handful)
HIGHLIGHT_FILL = "#fff3c4"
HIGHLIGHT_COLOR = "#b26a00"
HIT_FILL = "#e3f2e1"


# --------------------------------------------------------------------------
# Node ids
# --------------------------------------------------------------------------


def node_id(kind: str, *parts: object) -> str:
    """A stable, DOT- and SVG-safe id: `kind:part:part`, each part percent-encoded outside [A-Za-z0-9_.|/@+-]."""
    return ":".join([kind, *(quote(str(p), safe="|._-/@+") for p in parts)])


def parse_node_id(nid: str) -> tuple[str, tuple[str, ...]]:
    """The inverse of `node_id`: `rule:mangle:ISTIO_INBOUND:3` -> ("rule", ("mangle", "ISTIO_INBOUND", "3"))."""
    kind, *parts = nid.split(":")
    return kind, tuple(unquote(p) for p in parts)


def _safe_url(url: str) -> str:
    """A caller's URL made inert for DOT and SVG: percent-encoded outside URL characters, `&` as `&amp;`
    (Graphviz copies node URLs into the SVG without escaping them)."""
    return quote(str(url), safe="/:?#[]@!$()*+,;=%-._~&").replace("&", "&amp;")


def _attr(value: str) -> str:
    """A plain (non-HTML) DOT attribute value we build: no quotes, no backslashes, no control characters."""
    v = re.sub(r"[\x00-\x1f\x7f]", "", value).replace("\\", "%5C").replace('"', "%22")
    return f'"{v}"'


# --------------------------------------------------------------------------
# The DOT builder
# --------------------------------------------------------------------------


class _Dot:
    def __init__(self, link: Callable[[str], str] | None):
        self.link = link
        self.names: dict[str, str] = {}  # node id -> DOT node name
        self.lines: list[str] = []
        self.edges: list[str] = []

    def name(self, nid: str) -> str:
        n = self.names.get(nid)
        if n is None:
            n = self.names[nid] = f"n{len(self.names) + 1}"
        return n

    def href(self, nid: str) -> str:
        if self.link is None:
            return ""
        return f", href={_attr(_safe_url(self.link(nid)))}, target=_top"

    def td_href(self, nid: str) -> str:
        """HREF of a table cell (a rule or route row): Graphviz 2.43 writes a cell's ID into the SVG only as the
        anchor `a_<id>` of a link, so without `link` the row links to `#<id>`."""
        url = esc(_safe_url(self.link(nid) if self.link is not None else f"#{nid}"), 4000)  # decoded once by Graphviz
        return f' HREF="{url}" TARGET="_top"'

    def node(self, nid: str, label: str, indent: str = "    ", **attrs: str) -> str:
        """A node with an HTML-like label (already escaped) and plain attributes (ours)."""
        name = self.name(nid)
        extra = "".join(f", {k}={_attr(v)}" for k, v in attrs.items())
        self.lines.append(f"{indent}{name} [id={_attr(nid)}, label=<{label}>{extra}{self.href(nid)}];")
        return name

    def edge(self, src: str, dst: str, label: str = "", **attrs: str) -> None:
        lab = f"label=<{label}>, " if label else ""
        extra = ", ".join(f"{k}={_attr(v)}" for k, v in attrs.items())
        self.edges.append(f"  {src} -> {dst} [{lab}{extra}];")


def _small(text: object, limit: int = 400) -> str:
    """Small escaped text; a non-breaking space when empty (Graphviz refuses an empty <FONT>)."""
    body = esc(text, limit)
    return f'<FONT POINT-SIZE="9">{body}</FONT>' if body else "&#160;"


def _chain_label(
    d: _Dot,
    family: str,
    table: str,
    chain: Chain,
    hits: Mapping[RuleKey, Sequence[int]],
    highlight: set[RuleKey],
    builtin: bool,
) -> str:
    title = f"{table} {chain.name}"
    policy = f"policy {chain.policy}" if chain.policy else "user chain"
    n_hit = sum(1 for i in range(1, len(chain.rules) + 1) if hits.get((table, chain.name, i)))
    head = (
        f'<TR><TD COLSPAN="3" BGCOLOR="{"#dde7f0" if builtin else "#eeeeee"}" ALIGN="LEFT">'
        f"<B>{esc(title)}</B><BR/>"
        f'<FONT POINT-SIZE="9">{esc(policy)} · {len(chain.rules)} rule{"s" if len(chain.rules) != 1 else ""}'
        f" · {n_hit} hit</FONT></TD></TR>"
    )
    rows = [head]
    for i, rule in enumerate(chain.rules[:MAX_ROWS], 1):
        key = (table, chain.name, i)
        hit = list(hits.get(key, ()))
        rid = node_id("rule", table, chain.name, i)
        fill = HIGHLIGHT_FILL if key in highlight else (HIT_FILL if hit else "white")
        text = render_rule(rule).split(" ", 2)[2] if render_rule(rule).count(" ") >= 2 else ""
        hit_text = f"{len(hit)} conn" if hit else ""
        tip = esc(explain_rule(rule), 600)
        rows.append(
            f'<TR><TD PORT="r{i}" ID="{esc(rid)}" TOOLTIP="{tip}"{d.td_href(rid)} BGCOLOR="{fill}" ALIGN="RIGHT">'
            f'<FONT POINT-SIZE="9">#{i}</FONT></TD>'
            f'<TD BGCOLOR="{fill}" ALIGN="LEFT">{_small(text, 90)}</TD>'
            f'<TD BGCOLOR="{fill}" ALIGN="RIGHT">{_small(hit_text)}</TD></TR>'
        )
    if len(chain.rules) > MAX_ROWS:
        more = len(chain.rules) - MAX_ROWS
        rows.append(f'<TR><TD COLSPAN="3"><FONT POINT-SIZE="9">{esc(f"… {more} more rules")}</FONT></TD></TR>')
    return '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>"


def _ports_of(text: str) -> list[int]:
    """`15006`, `15001-15003`, `15001:15003` -> the ports (at most 64)."""
    m = re.fullmatch(r"(\d+)(?:[-:](\d+))?", text.strip())
    if m is None:
        return []
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    return list(range(lo, min(hi, lo + 63) + 1))


def _interception_port(rule: Rule) -> tuple[str, list[int]] | None:
    t = rule.target
    if t is None or t.goto:
        return None
    if t.name == "TPROXY":
        o = t.option("on-port")
        return ("TPROXY", _ports_of(o.values[0])) if o and o.values else None
    if t.name == "REDIRECT":
        o = t.option("to-ports")
        return ("REDIRECT", _ports_of(o.values[0])) if o and o.values else ("REDIRECT", [])
    return None


def _ruleset_for(snapshot: Snapshot, family: Family | str | None) -> Ruleset | None:
    if family is not None:
        rs = snapshot.ruleset(Family(str(family)))
        if rs is not None:
            return rs
    return snapshot.ruleset(Family.IPV4) or (snapshot.rulesets[0] if snapshot.rulesets else None)


def _netfilter(
    d: _Dot,
    rs: Ruleset | None,
    hits: Mapping[RuleKey, Sequence[int]],
    highlight: set[RuleKey],
    focus: Focus | None = None,
) -> dict[tuple[str, str], str]:
    """The netfilter cluster; returns (table, chain) -> DOT node name."""
    chain_names: dict[tuple[str, str], str] = {}
    out = d.lines
    family = str(rs.family) if rs is not None else "ipv4"
    label = f"netfilter ({family})" if rs is not None else "netfilter (no iptables rules given)"
    out.append("  subgraph cluster_netfilter {")
    out.append(
        f'    graph [label=<<B>{esc(label)}</B>>, style="rounded,filled", fillcolor="#f7f7f7", color="#999999"];'
    )
    tables: dict[str, Table] = {t.name: t for t in rs.tables} if rs is not None else {}
    hook_anchor: dict[str, str] = {}
    for hook, order in HOOK_TABLES:
        out.append(f"    subgraph cluster_hook_{hook} {{")
        out.append(
            f'      graph [label=<<B>{esc(hook)}</B>>, style="rounded,filled", fillcolor="#eef3f8", color="#88aaaa"];'
        )
        hid = node_id("hook", hook)
        prev = d.node(hid, f"<B>{esc(hook)}</B>", indent="      ", shape="cds", style="filled", fillcolor="#cfe0f0")
        hook_anchor[hook] = prev
        for tname in order:
            table = tables.get(tname)
            chain = table.chain(hook) if table is not None else None
            if table is None or chain is None:
                continue
            if focus is not None and (tname, hook) not in focus.chains:
                continue
            cid = node_id("chain", tname, hook)
            label = _chain_label(d, family, tname, chain, hits, highlight, True)
            emph = any(k[0] == tname and k[1] == hook for k in highlight)
            name = d.node(
                cid,
                label,
                indent="      ",
                shape="plain",
                color=HIGHLIGHT_COLOR if emph else "#333333",
            )
            chain_names[(tname, hook)] = name
            d.edge(prev, name, "", style="bold", color="#7a8fa6", arrowhead="vee")
            prev = name
        out.append("    }")
    for a, b, lab in HOOK_FLOW:
        d.edge(hook_anchor[a], hook_anchor[b], esc(lab), style="dashed", color="#9aa9b8", fontcolor="#667788")
    # user-defined chains, per table
    for table in rs.tables if rs is not None else ():
        users = [c for c in table.chains if (table.name, c.name) not in chain_names and not c.builtin]
        if focus is not None:
            users = [c for c in users if (table.name, c.name) in focus.chains]
        users += [
            c
            for c in table.chains
            if c.builtin
            and (table.name, c.name) not in chain_names
            and c not in users  # odd tables (lenient parse)
            and (focus is None or (table.name, c.name) in focus.chains)
        ]
        if not users:
            continue
        out.append(f"    subgraph cluster_user_{re.sub(r'[^A-Za-z0-9_]', '_', table.name)} {{")
        out.append(
            f'      graph [label=<<B>{esc(table.name)}</B> user-defined chains>, style="rounded,dashed", color="#aaaaaa"];'
        )
        for c in users:
            cid = node_id("chain", table.name, c.name)
            emph = any(k[0] == table.name and k[1] == c.name for k in highlight)
            chain_names[(table.name, c.name)] = d.node(
                cid,
                _chain_label(d, family, table.name, c, hits, highlight, False),
                indent="      ",
                shape="plain",
                color=HIGHLIGHT_COLOR if emph else "#333333",
            )
        out.append("    }")
    out.append("  }")
    # jump and goto edges, from the rule row
    for table, c, i, rule, row in _rule_rows(rs, chain_names):
        t = rule.target
        if t is None:
            continue
        dst = chain_names.get((table.name, t.name))
        if dst is None or (t.name in TARGETS and not t.goto and table.chain(t.name) is None):
            continue
        key = (table.name, c.name, i)
        emph = key in highlight
        d.edge(
            row,
            dst,
            esc(f"{'goto' if t.goto else 'jump'} #{i}"),
            style="dashed" if t.goto else "solid",
            color=HIGHLIGHT_COLOR if emph else ("#2e7d32" if hits.get(key) else "#555555"),
            penwidth="2.5" if emph else "1",
            fontsize="9",
        )
    return chain_names


def _nft_chain_label(
    d: _Dot, table: NftTable, chain: NftChain, hits: Mapping[RuleKey, Sequence[int]], highlight: set[RuleKey]
) -> str:
    label = table.label
    if chain.base:
        sub = f"{chain.type} hook {chain.hook} priority {chain.priority} · policy {chain.policy or 'accept'}"
    else:
        sub = "regular chain"
    n_hit = sum(1 for i in range(1, len(chain.rules) + 1) if hits.get((label, chain.name, i)))
    rows = [
        f'<TR><TD COLSPAN="3" BGCOLOR="{"#e3ecf7" if chain.base else "#eeeeee"}" ALIGN="LEFT">'
        f"<B>{esc(f'nft {label} {chain.name}')}</B><BR/>"
        f'<FONT POINT-SIZE="9">{esc(sub)} · {len(chain.rules)} rule{"s" if len(chain.rules) != 1 else ""}'
        f" · {n_hit} hit</FONT></TD></TR>"
    ]
    for i, rule in enumerate(chain.rules[:MAX_ROWS], 1):
        key = (label, chain.name, i)
        hit = list(hits.get(key, ()))
        rid = node_id("rule", label, chain.name, i)
        fill = HIGHLIGHT_FILL if key in highlight else (HIT_FILL if hit else "white")
        rows.append(
            f'<TR><TD PORT="r{i}" ID="{esc(rid)}" TOOLTIP="{esc(explain_nft_rule(rule), 600)}"{d.td_href(rid)} '
            f'BGCOLOR="{fill}" ALIGN="RIGHT"><FONT POINT-SIZE="9">#{i}</FONT></TD>'
            f'<TD BGCOLOR="{fill}" ALIGN="LEFT">{_small(rule.text(), 90)}</TD>'
            f'<TD BGCOLOR="{fill}" ALIGN="RIGHT">{_small(f"{len(hit)} conn" if hit else "")}</TD></TR>'
        )
    if len(chain.rules) > MAX_ROWS:
        more = len(chain.rules) - MAX_ROWS
        rows.append(f'<TR><TD COLSPAN="3"><FONT POINT-SIZE="9">{esc(f"… {more} more rules")}</FONT></TD></TR>')
    return '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>"


def _nft_targets(rule: NftRule, table: NftTable) -> list[tuple[str, str]]:
    """(jump|goto, chain) of every verdict of the rule: its own, an anonymous verdict map's, a named map's."""
    out: list[tuple[str, str]] = []
    for st in rule.statements:
        verdicts: list[NftVerdict] = []
        if isinstance(st, NftVerdict):
            verdicts.append(st)
        elif isinstance(st, Vmap):
            elements = st.map.elements if isinstance(st.map, AnonSet) else ()
            if isinstance(st.map, SetRef):
                named = table.set(st.map.name)
                elements = named.elements if named is not None else ()
            verdicts += [e.data for e in elements if isinstance(e.data, NftVerdict)]
        out += [(v.kind, v.chain) for v in verdicts if v.kind in ("jump", "goto") and v.chain]
    return list(dict.fromkeys(out))


#: jump edges drawn from one nft rule (a verdict map of kube-proxy's sends one per service)
MAX_NFT_EDGES_PER_RULE = 12
_NFT_FAMILIES = {Family.IPV4: ("ip", "inet"), Family.IPV6: ("ip6", "inet")}


def _nftables(
    d: _Dot,
    snapshot: Snapshot,
    family: Family,
    hits: Mapping[RuleKey, Sequence[int]],
    highlight: set[RuleKey],
    focus: Focus | None,
) -> None:
    """The nft tables of `family` (ip and inet for IPv4, ip6 and inet for IPv6), one cluster each: chain nodes
    like iptables' (rows, hits, highlight), base chains fed from their hook's node, jump/goto edges from the rule.
    iptables-nft's tables are left out when the iptables evidence is drawn (they are the same rules)."""
    nft = snapshot.nftables
    if nft is None:
        return
    names: dict[tuple[str, str], str] = {}
    drawn: list[NftTable] = []
    for n, table in enumerate(nft.tables):
        if table.family not in _NFT_FAMILIES.get(family, ()) or (snapshot.rulesets and is_iptables_nft(table)):
            continue
        chains = [c for c in table.chains if focus is None or (table.label, c.name) in focus.chains]
        if not chains:
            continue
        drawn.append(table)
        d.lines.append(f"  subgraph cluster_nft_{n} {{")
        d.lines.append(
            f'    graph [label=<<B>{esc(f"nft table {table.label}")}</B>>, style="rounded,filled", '
            f'fillcolor="#f4f8fc", color="#7a99bb"];'
        )
        for c in chains:
            emph = any(k[0] == table.label and k[1] == c.name for k in highlight)
            names[(table.label, c.name)] = d.node(
                node_id("chain", table.label, c.name),
                _nft_chain_label(d, table, c, hits, highlight),
                indent="    ",
                shape="plain",
                color=HIGHLIGHT_COLOR if emph else "#335577",
            )
            hook = d.names.get(node_id("hook", (c.hook or "").upper())) if c.base else None
            if hook is not None:
                d.edge(
                    hook, names[(table.label, c.name)], esc(f"priority {c.priority}"), style="dashed", color="#7a99bb"
                )
        d.lines.append("  }")
    for table in drawn:
        for c in table.chains:
            src = names.get((table.label, c.name))
            if src is None:
                continue
            for i, rule in enumerate(c.rules, 1):
                row = f"{src}:r{i}:e" if i <= MAX_ROWS else src
                key = (table.label, c.name, i)
                for kind, target in _nft_targets(rule, table)[:MAX_NFT_EDGES_PER_RULE]:
                    dst = names.get((table.label, target))
                    if dst is None:
                        continue
                    d.edge(
                        row,
                        dst,
                        esc(f"{kind} #{i}"),
                        style="dashed" if kind == "goto" else "solid",
                        color=HIGHLIGHT_COLOR if key in highlight else ("#2e7d32" if hits.get(key) else "#555555"),
                        fontsize="9",
                    )


def _rule_rows(
    rs: Ruleset | None, chain_names: Mapping[tuple[str, str], str]
) -> Iterator[tuple[Table, Chain, int, Rule, str]]:
    """Every rule of a drawn chain node: (table, chain, rule number, rule, where its edges start).

    Edges start at the rule's row (`node:rN:e`); a rule past the MAX_ROWS shown starts them at the chain node.
    """
    for table in rs.tables if rs is not None else ():
        for c in table.chains:
            src = chain_names.get((table.name, c.name))
            if src is None:
                continue
            for i, rule in enumerate(c.rules, 1):
                yield table, c, i, rule, f"{src}:r{i}:e" if i <= MAX_ROWS else src


def _routing(d: _Dot, snapshot: Snapshot) -> dict[int, list[str]]:
    """The policy routing cluster; returns fwmark -> the ip rule node names that select it."""
    routing = snapshot.routing
    out = d.lines
    out.append("  subgraph cluster_routing {")
    out.append(
        '    graph [label=<<B>policy routing</B>>, style="rounded,filled", fillcolor="#f5f1fa", color="#999999"];'
    )
    names = dict(routing.table_names)
    by_table: dict[int, list[Any]] = defaultdict(list)
    for r in routing.routes:
        by_table[r.table].append(r)
    table_nodes: dict[int, str] = {}

    def table_node(tid: int) -> str:
        if tid in table_nodes:
            return table_nodes[tid]
        routes = by_table.get(tid, [])
        tname = next((n for n, i in names.items() if i == tid), None) or next(
            (n for n, i in TABLE_IDS.items() if i == tid and n != "unspec"), None
        )
        title = f"table {tname} ({tid})" if tname and tname != str(tid) else f"table {tid}"
        rows = [f'<TR><TD BGCOLOR="#e6dcf0" ALIGN="LEFT"><B>{esc(title)}</B> · {len(routes)} routes</TD></TR>']
        for k, r in enumerate(routes[:MAX_ROWS], 1):
            rid = node_id("route", tid, k)
            text = r.ref.text.strip() if r.ref is not None else explain_route(r)
            rows.append(
                f'<TR><TD ID="{esc(rid)}" TOOLTIP="{esc(explain_route(r), 600)}"{d.td_href(rid)} ALIGN="LEFT">'
                f'<FONT POINT-SIZE="9">{esc(text, 90)}</FONT></TD></TR>'
            )
        if not routes:
            rows.append(f'<TR><TD><FONT POINT-SIZE="9" COLOR="{RED}">{esc("no routes in this table")}</FONT></TD></TR>')
        if len(routes) > MAX_ROWS:
            rows.append(f"<TR><TD>{esc(f'… {len(routes) - MAX_ROWS} more routes')}</TD></TR>")
        label = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>"
        table_nodes[tid] = d.node(node_id("rtable", tid), label, shape="plain")
        return table_nodes[tid]

    by_mark: dict[int, list[str]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    prev: str | None = None
    for rule in routing.rules:
        base = node_id("iprule", rule.priority) + (":v6" if rule.family == Family.IPV6 else "")
        seen[base] += 1
        rid = base if seen[base] == 1 else f"{base}:{seen[base]}"
        text = rule.ref.text.strip() if rule.ref is not None else explain_policy_rule(rule)
        label = f"<B>{esc(rule.priority)}</B> {esc(text, 120)}<BR/>" + (
            f'<FONT POINT-SIZE="9">{esc(explain_policy_rule(rule), 300)}</FONT>'
        )
        name = d.node(rid, label, shape="box", style="rounded,filled", fillcolor="white", fontsize="10")
        if prev is not None:
            d.edge(prev, name, "", style="dotted", color="#bbbbbb", arrowhead="none")
        prev = name
        if rule.fwmark is not None:
            by_mark[rule.fwmark & rule.fwmask].append(name)
        if rule.table is not None and rule.action.value == "lookup":
            d.edge(name, table_node(rule.table), esc("lookup"), color="#6a4c93")
    for tid in sorted(by_table):
        table_node(tid)
    out.append("  }")
    return by_mark


def _chain_clusters(fc: FilterChain, envoy: EnvoyConfig) -> list[str]:
    names: list[str] = []
    for f in fc.filters:
        if f.kind == TCP_PROXY:
            if f.cluster:
                names.append(f.cluster)
            names.extend(w.name for w in f.weighted_clusters)
        elif f.kind == HTTP_CONNECTION_MANAGER:
            rc = f.route_config or (envoy.route_config(f.route_config_name) if f.route_config_name else None)
            for vh in rc.virtual_hosts if rc is not None else ():
                for r in vh.routes:
                    if r.action.cluster:
                        names.append(r.action.cluster)
                    names.extend(w.name for w in r.action.weighted_clusters)
    return list(dict.fromkeys(names))


def _listener_label(lst: Listener) -> str:
    where = lst.address.describe() if lst.address is not None else "(no address)"
    lines = [f"<B>listener {esc(lst.name)}</B>", esc(where)]
    flags = []
    if lst.state != "active":
        flags.append(f"state {lst.state}")
    if lst.use_original_dst:
        flags.append("use_original_dst")
    if lst.transparent:
        flags.append("transparent")
    if not lst.bind_to_port:
        flags.append("bind_to_port: false")
    if flags:
        lines.append(f'<FONT POINT-SIZE="9">{esc(", ".join(flags))}</FONT>')
    osrc = lst.listener_filter(ORIGINAL_SRC)
    if osrc is not None:
        mark = f"mark {osrc.mark}" if osrc.mark else "no mark"
        lines.append(f'<FONT POINT-SIZE="9" COLOR="#2e7d32">{esc(f"original_src ({mark})")}</FONT>')
    return "<BR/>".join(lines)


def _cluster_label(c: Cluster | None, name: str, envoy: EnvoyConfig) -> str:
    if c is None:
        return f'<B>cluster {esc(name)}</B><BR/><FONT COLOR="{RED}">{esc("not in the config (503 NC)")}</FONT>'
    lines = [f"<B>cluster {esc(c.name)}</B>", esc(c.type)]
    bind = c.upstream_bind_config or envoy.bootstrap_upstream_bind_config
    if bind is not None and bind.source_address is not None:
        own = "" if c.upstream_bind_config is not None else " (bootstrap)"
        lines.append(f'<FONT POINT-SIZE="9">{esc(f"upstream bind {bind.source_address.address}{own}")}</FONT>')
    if bind is not None and bind.mark is not None:
        lines.append(f'<FONT POINT-SIZE="9">{esc(f"SO_MARK {bind.mark}")}</FONT>')
    for e in c.endpoints[:MAX_ENDPOINTS]:
        lines.append(f'<FONT POINT-SIZE="9">{esc("→ " + e.address.describe())}</FONT>')
    if len(c.endpoints) > MAX_ENDPOINTS:
        lines.append(f'<FONT POINT-SIZE="9">{esc(f"… {len(c.endpoints) - MAX_ENDPOINTS} more endpoints")}</FONT>')
    return "<BR/>".join(lines)


def _envoy(
    d: _Dot, envoy: EnvoyConfig | None, focus: Focus | None = None
) -> tuple[dict[int, list[str]], list[tuple[str, int]]]:
    """The Envoy cluster; returns port -> listener node names, and (listener node, original_src mark)."""
    by_port: dict[int, list[str]] = defaultdict(list)
    marks: list[tuple[str, int]] = []
    out = d.lines
    out.append("  subgraph cluster_envoy {")
    label = "Envoy" if envoy is not None else "Envoy (no config dump given)"
    out.append(
        f'    graph [label=<<B>{esc(label)}</B>>, style="rounded,filled", fillcolor="#f3f9f1", color="#999999"];'
    )
    if envoy is None:
        out.append("  }")
        return by_port, marks
    cluster_nodes: dict[str, str] = {}
    # a big dump: only the listeners that own a socket (those the kernel hands connections to) are drawn
    summary = focus is None and len(envoy.listeners) + len(envoy.clusters) > MAX_ENVOY_OBJECTS
    drawn = 0

    def cluster_node(name: str) -> str:
        if name not in cluster_nodes:
            cluster_nodes[name] = d.node(
                node_id("cluster", name), _cluster_label(envoy.cluster(name), name, envoy), fontsize="10"
            )
        return cluster_nodes[name]

    for lst in envoy.listeners:
        if focus is not None and lst.name not in focus.listeners:
            continue
        if summary and not (lst.state == "active" and lst.bind_to_port and drawn < MAX_SUMMARY_LISTENERS):
            continue
        drawn += 1
        lid = node_id("listener", lst.name) + ("" if lst.state == "active" else f":{lst.state}")
        name = d.node(
            lid,
            _listener_label(lst),
            fontsize="10",
            color=RED if lst.state == "error" else "#333333",
        )
        if lst.state == "active" and lst.bind_to_port and lst.address is not None and lst.address.port is not None:
            by_port[lst.address.port].append(name)
        osrc = lst.listener_filter(ORIGINAL_SRC)
        if osrc is not None and osrc.mark:
            marks.append((name, osrc.mark))
        chains = list(lst.filter_chains) + ([lst.default_filter_chain] if lst.default_filter_chain else [])
        for fc in chains[:MAX_CHAINS_PER_LISTENER]:
            fid = node_id("filterchain", lst.name, fc.index)
            tls = " (TLS)" if fc.transport_socket == "tls" else ""
            flabel = (
                f"<B>{esc(fc.label + tls)}</B><BR/>" + f'<FONT POINT-SIZE="9">{esc(fc.match.describe(), 160)}</FONT>'
            )
            if focus is not None and not set(_chain_clusters(fc, envoy)) & focus.clusters:
                continue
            fname = d.node(fid, flabel, shape="box", style="rounded", fontsize="10")
            d.edge(name, fname, "", color="#5b8c51")
            for cname in _chain_clusters(fc, envoy)[:MAX_CLUSTERS_PER_CHAIN]:
                if focus is not None and cname not in focus.clusters:
                    continue
                d.edge(fname, cluster_node(cname), "", color="#5b8c51")
        if len(chains) > MAX_CHAINS_PER_LISTENER:
            more = d.node(
                node_id("filterchain", lst.name, "more"),
                esc(f"… {len(chains) - MAX_CHAINS_PER_LISTENER} more filter chains"),
                shape="plaintext",
            )
            d.edge(name, more, "", style="dotted")
    if summary:
        hidden_listeners = len(envoy.listeners) - drawn
        hidden_clusters = sum(1 for c in envoy.clusters if c.name not in cluster_nodes)
        d.node(
            node_id("envoy", "more"),
            wrapped(
                f"… {hidden_listeners:,} more listeners and {hidden_clusters:,} more clusters: a dump this size "
                f"is drawn as (at most {MAX_SUMMARY_LISTENERS} of) the active listeners that own a socket and the "
                "clusters their filter chains lead to",
                48,
                400,
            ),
            shape="note",
            fontsize="10",
        )
    else:
        for c in envoy.clusters:
            if focus is None or c.name in focus.clusters:
                cluster_node(c.name)
    out.append("  }")
    return by_port, marks


@dataclass(frozen=True)
class Focus:
    """What one connection went through: only these chains, listeners and clusters are drawn ("only what this
    connection hit"), so a real pod's dozens of Envoy clusters do not dwarf the netfilter part."""

    chains: frozenset[tuple[str, str]]
    listeners: frozenset[str]
    clusters: frozenset[str]


_SOCKET_LISTENER = re.compile(r"^envoy listener (\S+?):")


def focus_of(story: Mapping[str, Any]) -> Focus:
    """The chains (every rule or policy step's table/chain), Envoy listeners and clusters of a stored story."""
    chains: set[tuple[str, str]] = set()
    listeners: set[str] = set()
    for hop in story.get("traces") or []:
        trace = hop.get("trace") or {}
        m = _SOCKET_LISTENER.match(str(trace.get("socket") or ""))
        if m:
            listeners.add(m.group(1))
        for khop in trace.get("hops") or []:
            for step in khop.get("steps") or []:
                if step.get("table") and step.get("chain"):
                    chains.add((str(step["table"]), str(step["chain"])))
    facts = story.get("facts") or {}
    if facts.get("listener"):
        listeners.add(str(facts["listener"]))
    clusters = {str(facts["cluster"])} if facts.get("cluster") else set()
    return Focus(frozenset(chains), frozenset(listeners), frozenset(clusters))


def structure_dot(
    snapshot: Snapshot,
    envoy: EnvoyConfig | None,
    hits: Mapping[RuleKey, Sequence[int]] | None = None,
    highlight: Iterable[RuleKey] = (),
    link: Callable[[str], str] | None = None,
    family: Family | str | None = None,
    focus: Focus | None = None,
) -> str:
    """The pod's structure as Graphviz DOT: netfilter, policy routing and Envoy, linked where they meet.

    `family` picks the ruleset drawn (default IPv4, else the first one); `hits` and `highlight` refer to it.
    With `focus`, only the chains, listeners and clusters one connection went through are drawn.
    """
    hits = hits or {}
    hl = {(str(t), str(c), int(i)) for t, c, i in highlight}
    d = _Dot(link)
    rs = _ruleset_for(snapshot, family)
    chain_names = _netfilter(d, rs, hits, hl, focus)
    _nftables(d, snapshot, rs.family if rs is not None else Family(str(family or Family.IPV4)), hits, hl, focus)
    by_mark = _routing(d, snapshot)
    by_port, marks = _envoy(d, envoy, focus)
    # TPROXY / REDIRECT -> the Envoy listener on that port
    missing: dict[int, str] = {}
    for table, c, i, rule, row in _rule_rows(rs, chain_names):
        ip = _interception_port(rule)
        if ip is None or envoy is None:
            continue
        kind, ports = ip
        emph = (table.name, c.name, i) in hl
        for p in ports[:4]:
            targets = by_port.get(p)
            if not targets:
                if p not in missing:
                    missing[p] = d.node(
                        node_id("port", p),
                        f'<FONT COLOR="{RED}">{esc(f"nothing listens on :{p}")}</FONT>',
                        shape="octagon",
                        color=RED,
                    )
                targets = [missing[p]]
            for t in targets:
                d.edge(
                    row,
                    t,
                    esc(f"{kind} → :{p} (#{i})"),
                    style="bold",
                    color=HIGHLIGHT_COLOR if emph else "#1f4e79",
                    constraint="false",
                    fontsize="9",
                )
    # original_src mark -> the ip rules selecting that fwmark
    for lname, mark in marks:
        for rname in by_mark.get(mark, []):
            d.edge(lname, rname, esc(f"SO_MARK {mark} → fwmark"), style="dashed", color="#6a4c93", constraint="false")
        if not by_mark.get(mark):
            d.edge(
                lname,
                d.node(
                    node_id("fwmark", mark),
                    f'<FONT COLOR="{RED}">{esc(f"no ip rule for fwmark {mark}")}</FONT>',
                    shape="octagon",
                    color=RED,
                ),
                esc(f"SO_MARK {mark}"),
                style="dashed",
                color=RED,
                constraint="false",
            )
    head = [
        "digraph meshviz_structure {",
        '  graph [rankdir="LR", charset="UTF-8", fontname="Helvetica", compound="true", nodesep="0.25", '
        'ranksep="0.5", newrank="true"];',
        '  node [fontname="Helvetica", fontsize="10", shape="box", style="rounded,filled", fillcolor="white"];',
        '  edge [fontname="Helvetica", fontsize="9"];',
    ]
    return "\n".join([*head, *d.lines, *d.edges, "}"]) + "\n"


def render_structure_svg(
    dot_text: str, timeout: float = DEFAULT_TIMEOUT * 2, max_bytes: int = DEFAULT_MAX_BYTES * 2
) -> bytes:
    """`structure_dot` output rendered by Graphviz (render.py's bounded runner); raises render.DiagramError."""
    return render(dot_text, "svg", timeout=timeout, max_bytes=max_bytes)


__all__ = [
    "HOOK_TABLES",
    "Focus",
    "RuleRow",
    "focus_of",
    "hits_from_stories",
    "node_id",
    "parse_node_id",
    "render_structure_svg",
    "rule_rows",
    "steps_for_rule",
    "structure_dot",
]
