"""A story as a Graphviz graph (the explorer's detailed view: every kernel hop, Envoy's decisions, the failure in red)
and REDIRECT vs TPROXY side by side.  The flow diagram in lanes (render/flowchart.py) builds on `story_graph`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core.trace import Disposition, Hop, Step, StepAction, StepKind
from meshviz.engine.render.dot import (
    BAD_DISPOSITIONS,
    CLUSTERS,
    DIFF_FILL,
    HOOKS,
    RED,
    WRAP,
    _attrs,
    _Diagram,
    _emit,
    esc,
    wrapped,
)
from meshviz.engine.story.model import UDP_ANSWER_TITLE, Failure, Story, StoryHop

# --------------------------------------------------------------------------
# Story -> diagram
# --------------------------------------------------------------------------


def _is_reply(hop: StoryHop) -> bool:
    t = hop.trace
    if hop.title in ("SYN-ACK", UDP_ANSWER_TITLE):
        return True
    return t is not None and t.packet.protocol == "tcp" and {"SYN", "ACK"} <= set(t.packet.tcp_flags)


def _step_decides(s: Step) -> bool:
    if s.kind == StepKind.RULE_MATCH:
        return s.action not in (StepAction.JUMP, StepAction.GOTO)
    if s.kind == StepKind.POLICY:
        return s.action in (StepAction.DROP, StepAction.REJECT)
    return s.kind in (
        StepKind.ROUTING_LOOKUP,
        StepKind.SOCKET_LOOKUP,
        StepKind.LOOPBACK,
        StepKind.EXITS,
        StepKind.DROP,
        StepKind.UNSUPPORTED,
        StepKind.LIMIT,
        StepKind.DELIVERED,
        StepKind.TRANSFORMATION,
        StepKind.BRANCH,
    )


def _step_text(s: Step) -> str:
    """One deciding step, escaped and wrapped."""
    if s.kind in (StepKind.RULE_MATCH, StepKind.POLICY) and s.table and s.chain:
        where = f"{s.table}/{s.chain}" + (f" #{s.index}" if s.index else "")
        text = f"<b>{esc(where)}</b>: " + (wrapped(s.rule) if s.rule else wrapped(s.detail))
        if s.rule and s.action in (StepAction.CONTINUE, StepAction.TRANSFORM):
            text += f"<i>{wrapped('→ ' + s.detail)}</i>"
        return text
    detail = s.detail.split(" — ")[0]
    if s.kind == StepKind.LOOPBACK:
        detail = detail.split(";")[0]
    return wrapped(detail)


def _hook_tables(hop: Hop) -> list[str]:
    tables: list[str] = []
    for s in hop.steps:
        if _step_decides(s) and s.table and s.table not in tables:
            tables.append(s.table)
    return tables


def _kernel_node_label(hop: Hop) -> str:
    name = hop.name
    if name in HOOKS:
        tables = _hook_tables(hop)
        return f"<b>{esc(name)}</b>" + (f" · {esc(', '.join(tables))}" if tables else "")
    if name.startswith("routing decision"):
        rest = name[len("routing decision") :].strip()
        return "<b>routing decision</b>" + (f" {esc(rest)}" if rest else "")
    return f"<b>{esc(name)}</b>"


@dataclass
class _Ctx:
    d: _Diagram
    story: Story
    client: str | None = None  # node id of the client / network
    app: str | None = None
    listener: str | None = None  # the Envoy listener that accepted last
    upstream: str | None = None  # Envoy's upstream socket node
    outside: str | None = None  # the remote destination (outbound)
    last_accepted: str | None = None  # node id that accepted the previous SYN
    last_source: str | None = None  # node id that sent the previous SYN


def _socket_node(c: _Ctx, socket: str | None, *, failed: bool = False) -> str:
    name = socket or "a socket"
    short = name.split(": ")[0]
    if short.startswith("envoy listener"):
        key = "envoy_listener_" + hashlib.sha1(short.encode()).hexdigest()[:8]
        lst = short[len("envoy listener") :].strip()
        nid = c.d.node(
            "envoy",
            f"<b>Envoy listener</b><br/>{esc(lst)}<br/>" + f'<font point-size="9">{esc(name[len(short) + 2 :])}</font>',
            key=key,
            failed=failed,
        )
        c.listener = nid
        return nid
    if short.startswith("envoy upstream"):
        return _upstream_node(c, name, failed=failed)
    if short.startswith("application"):
        return _app_node(c, name, failed=failed)
    return c.d.node("pod-kernel", f"<b>socket</b><br/>{esc(name)}", failed=failed)


def _upstream_node(c: _Ctx, label: str, *, failed: bool = False) -> str:
    if c.upstream is None:
        c.upstream = c.d.node("envoy", f"<b>Envoy upstream socket</b><br/>{wrapped(label, 40)}", failed=failed)
    elif failed:
        c.d.nodes[c.upstream].failed = True
    return c.upstream


def _app_node(c: _Ctx, label: str, *, failed: bool = False) -> str:
    if c.app is None:
        c.app = c.d.node("application", f"<b>application</b><br/>{esc(label)}", key="application", failed=failed)
    elif failed:
        c.d.nodes[c.app].failed = True
    return c.app


def _client_node(c: _Ctx, label: str) -> str:
    if c.client is None:
        c.client = c.d.node("client", label, key="client", shape="box")
    return c.client


def _outside_node(c: _Ctx, iface: str | None, reply: bool) -> str:
    """Where a packet that leaves the pod goes: the client (inbound, replies) or the network."""
    if c.story.direction == "inbound" and c.client is not None:
        return c.client
    if c.outside is None:
        c.outside = c.d.node("client", f"<b>network</b><br/>via {esc(iface or '?')}", key="network")
    return c.outside


def _failing_trace(story: Story) -> tuple[int | None, str]:
    """Index (in story.hops) of the trace where the connection fails, and how: '', 'end', 'loop', 'escape'."""
    failure = story.verdict.failure
    if failure is None:
        return None, ""
    traced = [i for i, h in enumerate(story.hops) if h.trace is not None]
    if failure is Failure.LOOP:
        for i in reversed(traced):
            h = story.hops[i]
            if not _is_reply(h) and (h.trace.socket or "").startswith("envoy listener"):  # type: ignore[union-attr]
                return i, "loop"
        return None, ""
    if failure is Failure.REPLY_ESCAPES:
        for i in reversed(traced):
            h = story.hops[i]
            if _is_reply(h) and h.trace.disposition == Disposition.EXITS_INTERFACE:  # type: ignore[union-attr]
                return i, "escape"
        return None, ""
    last = story.hops[-1].trace if story.hops else None
    if last is not None and (
        last.disposition in BAD_DISPOSITIONS or failure in ("UPSTREAM_CONNECT_FAILURE", "TIMEOUT")
    ):
        return len(story.hops) - 1, "end"
    for i in reversed(traced):
        t = story.hops[i].trace
        assert t is not None
        if t.disposition in BAD_DISPOSITIONS:
            return i, "end"
    return None, ""


def _trace_path(c: _Ctx, hop: StoryHop, source: str, *, reply: bool, fail: str) -> str | None:
    """Draw one kernel trace from `source`; return the node where it ends (None: nowhere useful)."""
    t = hop.trace
    assert t is not None
    d = c.d
    prev = source
    pending: list[str] = []  # text of the edge leaving `prev`
    via: list[str] = []  # non-deciding hooks folded into the next edge

    def edge_label() -> str:
        label = "".join(pending)
        if via:
            label += f'<font color="#777777">{esc("via " + ", ".join(via))}</font><br align="left"/>'
        return label

    for h in t.hops:
        deciding = [s for s in h.steps if _step_decides(s)]
        always = h.name.startswith(("routing decision", "socket lookup", "lo", "eth")) or not h.name.isupper()
        if not deciding and not always:
            via.append(h.name)
            continue
        is_exit = any(s.kind == StepKind.EXITS for s in deciding)
        escaping = fail == "escape" and is_exit
        nid = d.node("pod-kernel", _kernel_node_label(h), failed=escaping)
        d.edge(prev, nid, edge_label(), reply=reply, failed=escaping)
        pending, via = [], []
        for s in deciding:
            if s.kind in (StepKind.EXITS, StepKind.SOCKET_LOOKUP) and s.detail:
                # the end of the trace says it again; keep the lookup's own words short
                pending.append(wrapped(s.detail.split(" — ")[0], WRAP, 160))
            else:
                pending.append(_step_text(s))
        prev = nid
    # where the trace ends
    disp = t.disposition
    if disp == Disposition.ACCEPTED_TO_SOCKET:
        end = _socket_node(c, t.socket, failed=fail == "loop")
        label = edge_label()
        if fail == "loop":
            label = f'<b>{esc("LOOP: Envoy accepts its own upstream connection")}</b><br align="left"/>' + label
        d.edge(prev, end, label, reply=reply, failed=fail == "loop")
        return end
    if disp == Disposition.EXITS_INTERFACE or disp == Disposition.FORWARDED:
        end = _outside_node(c, t.interface, reply)
        label = edge_label()
        if fail == "escape":
            escape = esc(f"the reply escapes via {t.interface or '?'}: it never reaches Envoy")
            label = f'<b>{escape}</b><br align="left"/>' + label
        d.edge(prev, end, label, reply=reply, failed=fail == "escape")
        return end
    failed = fail == "end" or disp in BAD_DISPOSITIONS
    what = {
        Disposition.DROPPED: "dropped",
        Disposition.REJECTED: "rejected",
        Disposition.NO_ROUTE: "no route",
        Disposition.NO_SOCKET: "no socket: reset (connection refused)",
        Disposition.LOOP: "loop",
        Disposition.UNSUPPORTED: "not simulated",
        Disposition.DELIVERED_LOCAL: "delivered locally",
    }.get(disp, disp.value)
    end = d.node(
        "pod-kernel",
        f"<b>{esc(what)}</b><br/>" + wrapped(t.detail, 40, 200),
        failed=failed,
        shape="octagon" if failed else "box",
    )
    d.edge(prev, end, edge_label(), reply=reply, failed=failed)
    return end


_RE_CHAIN = re.compile(r"→ filter chain (.+)$")
_RE_HANDOFF = re.compile(r"^listener (.+?) \(use_original_dst\) hands the connection to listener (.+)$")
_RE_CLUSTER_SEL = re.compile(r"→ cluster (.+)$")
_RE_DIALS = re.compile(r"^cluster (.+?) \((\w+)\) dials (.+?); upstream bind: (.+)$")


def _envoy_hop(c: _Ctx, hop: StoryHop, failing: bool) -> str | None:
    """Listener -> filter chain -> cluster -> upstream bind; returns the node Envoy's upstream SYN leaves from."""
    d = c.d
    facts = c.story.facts
    prev = c.listener or c.last_accepted
    if prev is None:
        prev = d.node("envoy", "<b>Envoy</b>")
    handoff = next((m for s in hop.steps if (m := _RE_HANDOFF.search(s))), None)
    if handoff is not None:
        nid = d.node("envoy", f"<b>Envoy listener</b><br/>{esc(handoff.group(2))}")
        d.edge(prev, nid, wrapped(f"use_original_dst: hand-off to {handoff.group(2)}"))
        prev = nid
    chain = next((m.group(1) for s in hop.steps if (m := _RE_CHAIN.search(s))), None)
    sel_cluster = next((s for s in hop.steps if _RE_CLUSTER_SEL.search(s)), None)
    dials = next((m for s in hop.steps if (m := _RE_DIALS.search(s))), None)
    peer = next((s for s in hop.steps if s.startswith("downstream peer")), None)
    if chain is not None:
        match_lines = [s for s in hop.steps if "→" in s and "filter chain" not in s and "cluster" not in s]
        label = wrapped(peer) if peer else ""
        if match_lines:
            label += wrapped(match_lines[0])
        nid = d.node("envoy", f"<b>filter chain</b><br/>{esc(chain)}")
        d.edge(prev, nid, label)
        prev = nid
    if dials is not None or sel_cluster is not None:
        name = dials.group(1) if dials else facts.get("cluster") or "?"
        ctype = f" ({dials.group(2)})" if dials else ""
        nid = d.node("envoy", f"<b>cluster</b><br/>{esc(name)}{esc(ctype)}")
        d.edge(prev, nid, wrapped(sel_cluster) if sel_cluster else "")
        prev = nid
    if dials is not None:
        bind = dials.group(4)
        mark = facts.get("upstream_mark")
        extra = [s for s in hop.steps if s.startswith(("SO_MARK", "original_src", "cluster ")) and "dials" not in s]
        label = f"<b>upstream bind</b><br/>{esc(bind)}" + (f"<br/>SO_MARK {esc(mark)}" if mark else "")
        nid = d.node("envoy", label)
        c.upstream = nid
        body = wrapped(f"dial {dials.group(3)}")
        for s in extra[:2]:
            body += f'<font point-size="8">{wrapped(s, 70, 240)}</font>'
        d.edge(prev, nid, body)
        return nid
    # Envoy stops here (no filter chain, no cluster, no endpoint, EPERM...) or there is no config
    if failing:
        nid = d.node(
            "envoy",
            f"<b>{esc(c.story.verdict.failure_code or 'fails')}</b><br/>{wrapped(hop.detail, 40)}",
            failed=True,
            shape="octagon",
        )
        d.edge(prev, nid, wrapped(hop.detail), failed=True)
        return None
    nid = d.node("envoy", f"<b>Envoy</b><br/>{wrapped(hop.detail, 40)}")
    d.edge(prev, nid, "")
    c.upstream = nid
    return nid


def story_to_dot(story: Story) -> str:
    """The connection's story as a Graphviz digraph (DOT text)."""
    d, title, lines = story_graph(story)
    return _emit(d, title, lines)


def story_graph(story: Story) -> tuple[_Diagram, str, list[str]]:
    """The connection's story as nodes (by lane) and numbered edges in story order, with the diagram's title and
    subtitle lines; `story_to_dot` draws it as a graph, `meshviz.engine.render.flowchart` as lanes."""
    d = _Diagram()
    c = _Ctx(d, story)
    fail_index, fail_how = _failing_trace(story)
    failure = story.verdict.failure_code
    for i, hop in enumerate(story.hops):
        if hop.trace is not None:
            t = hop.trace
            reply = _is_reply(hop)
            if reply:
                source = c.last_accepted or _client_node(c, "<b>?</b>")
            elif hop.title == "client SYN" or (story.direction == "inbound" and c.client is None):
                source = _client_node(c, f"<b>client</b><br/>{esc(t.packet.src)}:{esc(t.packet.sport)}")
            elif hop.title.startswith("Envoy") or hop.title.startswith("Envoy's"):
                source = c.upstream or c.listener or d.node("envoy", "<b>Envoy upstream</b>")
            elif "application" in hop.title:
                source = _app_node(c, f"opens {t.packet.dst}:{t.packet.dport}")
            else:
                source = d.node("pod-kernel", f"<b>{esc(hop.title)}</b>")
            how = fail_how if i == fail_index else ""
            end = _trace_path(c, hop, source, reply=reply, fail=how)
            if not reply:
                c.last_source, c.last_accepted = source, end
        elif hop.node == "envoy":
            # Envoy stopping the story (no filter chain, no cluster, TLS required, EPERM...) is the failure
            _envoy_hop(c, hop, failing=bool(failure) and i == len(story.hops) - 1)
        elif hop.node == "application":
            nid = _app_node(c, hop.detail)
            d.nodes[nid].label = f"<b>application</b><br/>{wrapped(hop.detail, 40)}"
        else:
            d.node(
                hop.node if hop.node in {k for k, _, _ in CLUSTERS} else "pod-kernel",
                f"<b>{esc(hop.title)}</b><br/>{wrapped(hop.detail, 40)}",
            )
    title, _, cause = story.summary.partition(" - ")
    lines = [f"cause: {cause}"] if cause else []
    if failure:
        lines.insert(0, f"verdict: FAILS ({failure})")
    else:
        lines.insert(0, "verdict: OK")
    return d, f"{story.direction}: {title}", lines


# --------------------------------------------------------------------------
# Comparison -> diagram
# --------------------------------------------------------------------------


def compare_to_dot(comparison: dict[str, Any], connection: int = 0) -> str:
    """One connection of `compare()`'s output: REDIRECT | TPROXY side by side, differing rows highlighted."""
    modes: list[str] = list(comparison.get("modes") or ["REDIRECT", "TPROXY"])
    conns = comparison.get("connections") or []
    if not 0 <= connection < len(conns):
        raise ValueError(f"the comparison has no connection #{connection}")
    conn = conns[connection]
    rows = conn.get("rows") or []
    summaries = conn.get("summaries") or {}
    verdicts = conn.get("verdicts") or {}
    order = sorted(modes, key=lambda m: 0 if m == "REDIRECT" else 1)
    out = [
        "digraph meshviz_compare {",
        "  graph "
        + _attrs(
            rankdir="TB",
            charset="UTF-8",
            fontname="Helvetica",
            labelloc="t",
            labeljust="l",
            newrank="true",
            nodesep="0.6",
            ranksep="0.25",
            label=_compare_title(conn, comparison),
        )
        + ";",
        f"  node {_attrs(fontname='Helvetica', fontsize='10', shape='box', style='rounded,filled', fillcolor='white', width='3.6')};",
        f"  edge {_attrs(style='invis')};",
    ]
    for m_i, mode in enumerate(order):
        failure = (verdicts.get(mode) or {}).get("failure")
        uploaded = " (as uploaded)" if comparison.get("as_uploaded") == mode else " (derived)"
        out.append(f"  subgraph cluster_{m_i} {{")
        head = f"<b>{esc(mode)}</b>{esc(uploaded)}<br/>" + (
            f'<font color="{RED}">{wrapped("fails: " + str(failure), 48)}</font>'
            if failure
            else f'<font color="#2e7d32">{esc("works")}</font>'
        )
        out.append(
            f"    graph {_attrs(label=f'<{head}>', style='rounded,filled', fillcolor='#f7f7f7', color='#999999')};"
        )
        summary = summaries.get(mode)
        if summary:
            out.append(f"    s{m_i} {_attrs(label=f'<<i>{wrapped(summary, 48, 300)}</i>>', shape='note')};")
        for r_i, row in enumerate(rows):
            differs = bool(row.get("differs"))
            value = row.get(mode)
            body = (
                f'<font point-size="8" color="#555555">{esc(row.get("label") or row.get("aspect") or "")}</font><br/>'
            )
            body += wrapped("—" if value is None else value, 48)
            out.append(
                f"    r{m_i}_{r_i} "
                + _attrs(
                    label=f"<{body}>",
                    fillcolor=DIFF_FILL if differs else "white",
                    color="#b26a00" if differs else "#999999",
                    penwidth="2" if differs else "1",
                )
                + ";"
            )
        chain = ([f"s{m_i}"] if summary else []) + [f"r{m_i}_{r_i}" for r_i in range(len(rows))]
        for a, b in itertools.pairwise(chain):
            out.append(f"    {a} -> {b};")
        out.append("  }")
    for r_i, row in enumerate(rows):
        out.append(f"  {{rank=same; r0_{r_i}; r1_{r_i};}}" if len(order) > 1 else "")
        if row.get("differs") and len(order) > 1:
            out.append(
                f"  r0_{r_i} -> r1_{r_i} "
                + _attrs(style="dashed", color="#b26a00", dir="both", arrowsize="0.6", constraint="false")
                + ";"
            )
    if len(order) > 1 and any(summaries.get(m) for m in order):
        out.append("  {rank=same; s0; s1;}")
    out.append("}")
    return "\n".join(line for line in out if line) + "\n"


def _compare_title(conn: dict[str, Any], comparison: dict[str, Any]) -> str:
    cn = conn.get("connection") or {}
    title = f"REDIRECT vs TPROXY: {cn.get('client', '?')} -> pod port {cn.get('port', '?')}"
    n = sum(1 for r in conn.get("rows") or [] if r.get("differs"))
    body = f'<font point-size="15"><b>{wrapped(title, 100)}</b></font>'
    differ = wrapped(f"{n} of {len(conn.get('rows') or [])} aspects differ (highlighted)", 100)
    body += f'<font point-size="10">{differ}</font>'
    return f"<{body}>"


__all__ = ["compare_to_dot", "story_graph", "story_to_dot"]
