"""Flow diagrams laid out in lanes, readable at their natural size: one row per step, as a sequence diagram.

`story_to_flow_dot(story)` draws one connection in four lanes (client | pod kernel | Envoy | application) that run
left to right, one row per step from top to bottom. Each row is a box in the lane where the step happens, joined
to the step before; the rule or lookup that decided the step stands in the "decided by" column on the same row,
numbered like the step. Hooks and chains that merely pass are not rows: they are folded into the step's text
("via INPUT") and listed in full in its tooltip. The request path comes first (SYNs, solid), then the reply path
(SYN-ACKs back to each sender, dashed) under its own heading, numbered in that order. The step where the
connection fails is red and carries the SVG class `failure` (the page scrolls it into view).

`compare_to_flow_dot(comparison, n)` draws connection `n` of a REDIRECT/TPROXY comparison as the two modes' flow
diagrams side by side, each in a narrower form without the "decided by" column (each step's rule is in its tooltip),
with the steps that one mode takes and the other does not highlighted.

Every position is computed here (the DOT pins each node; Graphviz's `neato` only draws), so a diagram's width is
fixed: about 1,150 points for one connection, and its text is 11 points or more, which stays at or above 11 px
when the page shows it at its width. Labels come from `meshviz.engine.render.story_dot.story_graph`, already escaped; text
added here goes through `render.esc` / `render.wrapped`.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshviz.engine.render import dot as render
from meshviz.engine.render.story_dot import story_graph
from meshviz.engine.story.model import Story

LANES = ("client", "pod-kernel", "envoy", "application")
LANE_TITLES = {
    "client": "client / network",
    "pod-kernel": "pod kernel",
    "envoy": "Envoy sidecar",
    "application": "application",
}
LANE_FILL = {"client": "#eef4fa", "pod-kernel": "#f3f3f3", "envoy": "#edf6ea", "application": "#faf3e8"}

FONT = 12  # points: body text
SMALL = 11  # points: the smallest text drawn
LINE = 14.5  # points per line of text
GAP = 9.0  # between rows


@dataclass(frozen=True)
class Layout:
    """Widths in points: the number gutter, each lane, the "decided by" column; characters per line."""

    gutter: float = 34
    lanes: tuple[float, float, float, float] = (130, 215, 215, 150)
    notes: float = 400
    node_wrap: tuple[int, int, int, int] = (18, 30, 30, 21)
    note_lines: int = 12  # at most this many lines of a step's text
    note_wrap: int = 58  # characters per line of a step's text

    @property
    def width(self) -> float:
        return self.gutter + sum(self.lanes) + (16 + self.notes if self.notes else 4)

    def lane_x(self, lane: str) -> float:
        i = LANES.index(lane)
        return self.gutter + sum(self.lanes[:i]) + self.lanes[i] / 2

    @property
    def notes_x(self) -> float:
        return self.gutter + sum(self.lanes) + 16


FULL = Layout()
#: one side of a comparison: no "decided by" column (each step's rule is in its tooltip), so that both sides fit a
#: page's width with text of 11 points or more
NARROW = Layout(gutter=30, lanes=(118, 190, 190, 130), notes=0, node_wrap=(17, 26, 26, 18), note_lines=6)


@dataclass
class _Row:
    kind: str  # step | start | heading
    lane: str = ""
    label: str = ""  # the box's HTML-like label
    note: str = ""  # the "decided by" text (HTML-like), empty for a start row
    number: int = 0
    reply: bool = False
    failed: bool = False
    differs: bool = False
    tooltip: str = ""
    joined: bool = True  # an arrow from the row before
    key: str = ""  # what the step is, for comparisons


@dataclass
class _Flow:
    rows: list[_Row] = field(default_factory=list)
    title: str = ""
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Story -> rows
# --------------------------------------------------------------------------

_BR = re.compile(r"<br[^>]*/>")
_TAG = re.compile(r"<[^>]+>")
_NUMBER = re.compile(r"^<b>\d+</b>(?: \(reply\))?(?:<br align=\"left\"/>)?")
_FORMAT_TAG = re.compile(r"<(/?)(b|i|u|s|font|sub|sup)\b[^>]*>")
_SMALL_FONT = re.compile(r'point-size="(?:[0-9]|10)"')


def _plain(label: str) -> list[str]:
    """The lines of an HTML-like label as plain text (unescaped)."""
    return [html.unescape(_TAG.sub("", part)).strip() for part in _BR.split(label) if _TAG.sub("", part).strip()]


def _br(label: str) -> str:
    """Line breaks without alignment (inside a table cell, BALIGN aligns them)."""
    return label.replace('<br align="left"/>', "<br/>")


def _box_label(label: str, wrap: int) -> str:
    """A node's label re-wrapped for its lane: the first line bold, the rest plain."""
    lines = _plain(label)
    if not lines:
        return ""
    head = _br(render.wrapped(lines[0], wrap))
    rest = "".join(_br(render.wrapped(x, wrap)) for x in lines[1:])
    return f"<b>{head}</b>{rest}"


def _note(label: str, max_lines: int, wrap: int = 64) -> str:
    """An edge's label without its number, at least SMALL points, cut to `max_lines` lines."""
    body = _rewrap(_SMALL_FONT.sub(f'point-size="{SMALL}"', _NUMBER.sub("", label)), wrap)
    parts = body.split('<br align="left"/>')
    if len(parts) - 1 > max_lines:
        kept = '<br align="left"/>'.join(parts[:max_lines])
        # close what the cut left open, innermost first
        stack: list[str] = []
        for closing, tag in _FORMAT_TAG.findall(kept):
            if closing and stack and stack[-1] == tag:
                stack.pop()
            elif not closing:
                stack.append(tag)
        kept += "".join(f"</{tag}>" for tag in reversed(stack))
        body = kept + '<br align="left"/><i>…</i><br align="left"/>'
    return body


_TOKEN = re.compile(r"(<[^>]+>)")


def _rewrap(label: str, width: int) -> str:
    """Break an HTML-like label's lines longer than `width` characters between words, keeping its markup."""
    out: list[str] = []
    col = 0
    for token in _TOKEN.split(label):
        if not token:
            continue
        if token.startswith("<"):
            out.append(token)
            if token.startswith("<br"):
                col = 0
            continue
        words = token.split(" ")
        for i, word in enumerate(words):
            size = len(html.unescape(word))
            if i > 0:
                if col + 1 + size > width and col > 0:
                    out.append('<br align="left"/>')
                    col = 0
                else:
                    out.append(" ")
                    col += 1
            out.append(word)
            col += size
    return "".join(out)


def _via(label: str) -> str:
    m = re.search(r"via ([A-Z, ]+)", html.unescape(_TAG.sub("", label)))
    return m.group(1).strip() if m else ""


def flow_of(story: Story, layout: Layout = FULL) -> _Flow:
    """The story's steps as rows: the request path, then the reply path."""
    d, title, lines = story_graph(story)
    wraps = dict(zip(LANES, layout.node_wrap, strict=True))
    flow = _Flow(title=title, lines=lines)
    sections = [("request", [e for e in d.edges if not e.reply]), ("reply", [e for e in d.edges if e.reply])]
    number = 0
    for name, edges in sections:
        if not edges:
            continue
        if name == "reply":
            back = "the answer back to the sender" if story.direction == "udp" else "the SYN-ACKs back to each sender"
            flow.rows.append(_Row("heading", label=f"reply path: {back} (dashed)"))
        at: str | None = None  # the node the previous row drew
        for e in edges:
            if e.src != at:
                src = d.nodes[e.src]
                flow.rows.append(
                    _Row(
                        "start",
                        lane=src.cluster if src.cluster in LANES else "pod-kernel",
                        label=_box_label(src.label, wraps.get(src.cluster, 30)),
                        reply=e.reply,
                        joined=False,
                        key="start:" + " ".join(_plain(src.label)[:1]),
                    )
                )
            dst = d.nodes[e.dst]
            lane = dst.cluster if dst.cluster in LANES else "pod-kernel"
            number += 1
            via = _via(e.label)
            tip = " ".join(_plain(e.label))
            if via:
                tip += f" (the packet also passes {via}, where no rule decides anything)"
            flow.rows.append(
                _Row(
                    "step",
                    lane=lane,
                    label=_box_label(dst.label, wraps[lane]),
                    note=_note(e.label, layout.note_lines, layout.note_wrap),
                    number=number,
                    reply=e.reply,
                    failed=e.failed or dst.failed,
                    tooltip=render.clean(tip, 600),
                    key=f"{lane}:{' '.join(_plain(dst.label))}",
                )
            )
            at = e.dst
    return flow


# --------------------------------------------------------------------------
# Rows -> DOT with every node pinned
# --------------------------------------------------------------------------


def _a(**kw: str | None) -> str:
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        out.append(f"{k}={v}" if v.startswith("<") else f'{k}="{v}"')
    return "[" + ", ".join(out) + "]"


def _pos(x: float, y: float) -> str:
    return f"{x / 72:.3f},{-y / 72:.3f}!"


def _inch(v: float) -> str:
    return f"{v / 72:.3f}"


def _lines(label: str) -> int:
    return max(1, label.count("<br"))


def _title(title: str, lines: Sequence[str], width: float) -> str:
    chars = int(width / 7.5)
    body = f'<font point-size="16"><b>{render.wrapped(title, chars)}</b></font>'
    for line in lines:
        body += f'<font point-size="{FONT}">{render.wrapped(line, int(width / 6.2))}</font>'
    return body


def _legend() -> str:
    return (
        f'<font point-size="{SMALL}" color="#444444">solid arrows: the request (SYN) &#160; '
        "dashed: replies (SYN-ACK) &#160; "
        f'<font color="{render.RED}">red: where it fails</font> &#160; '
        'click a step for all of it</font><br align="left"/>'
    )


def _draw(flow: _Flow, layout: Layout, *, x0: float, y0: float, prefix: str, out: list[str]) -> float:
    """The flow's lanes, rows and arrows from (x0, y0) downward; returns the height drawn."""
    y = y0
    # lane titles
    for lane in LANES:
        x = x0 + layout.lane_x(lane)
        out.append(
            f"  {prefix}h_{lane.replace('-', '_')} "
            + _a(
                label=f"<<b>{render.esc(LANE_TITLES[lane])}</b>>",
                shape="plaintext",
                fontsize=str(FONT + 1),
                pos=_pos(x, y + 10),
            )
            + ";"
        )
    if layout.notes:
        out.append(
            f"  {prefix}h_notes "
            + _a(
                label=f'<<TABLE BORDER="0" CELLPADDING="0"><TR><TD WIDTH="{int(layout.notes)}" ALIGN="LEFT">'
                f"<b>{render.esc('decided by')}</b></TD></TR></TABLE>>",
                shape="plaintext",
                fontsize=str(FONT + 1),
                pos=_pos(x0 + layout.notes_x + layout.notes / 2, y + 10),
            )
            + ";"
        )
    y += 30
    body_top = y
    drawn: list[str] = []
    prev: str | None = None
    first_failure = True
    for i, row in enumerate(flow.rows):
        rid = f"{prefix}r{i}"
        if row.kind == "heading":
            y += 6
            out.append(
                f"  {rid} "
                + _a(
                    label=f'<<TABLE BORDER="0" CELLPADDING="0"><TR><TD WIDTH="{int(layout.width - 8)}" '
                    f'ALIGN="LEFT"><b>{render.esc(row.label)}</b></TD></TR></TABLE>>',
                    shape="plaintext",
                    fontsize=str(FONT),
                    fontcolor="#444444",
                    pos=_pos(x0 + layout.width / 2, y + 9),
                )
                + ";"
            )
            y += 26
            prev = None
            continue
        box_h = _lines(row.label) * LINE + 10
        note_h = _lines(row.note) * LINE if row.note and layout.notes else 0
        h = max(box_h, note_h, 26)
        cy = y + h / 2
        lane_w = layout.lanes[LANES.index(row.lane)]
        color = (
            render.RED
            if row.failed
            else ("#b26a00" if row.differs else ("#777777" if row.kind == "start" else "#333333"))
        )
        fill = render.FAIL_FILL if row.failed else (render.DIFF_FILL if row.differs else "white")
        classes = " ".join(
            c
            for c in ("step", "failure" if row.failed and first_failure else "", "differs" if row.differs else "")
            if c
        )
        if row.failed:
            first_failure = False
        out.append(
            f"  {rid} "
            + _a(
                label=f"<{row.label}>",
                shape="box",
                style="rounded,filled" + (",dashed" if row.kind == "start" else ""),
                color=color,
                fillcolor=fill,
                penwidth="2" if (row.failed or row.differs) else "1",
                width=_inch(lane_w - 14),
                height=_inch(box_h),
                pos=_pos(x0 + layout.lane_x(row.lane), cy),
                tooltip=render.esc(row.tooltip) if row.tooltip else None,
                **{"class": classes},
            )
            + ";"
        )
        if row.number:
            out.append(
                f"  {rid}_n "
                + _a(
                    label=f"<<b>{row.number}</b>>",
                    shape="circle",
                    style="filled",
                    fillcolor=render.RED if row.failed else ("#6a6a6a" if row.reply else render.SYN_COLOR),
                    fontcolor="white",
                    color="none",
                    fontsize=str(SMALL),
                    width="0.30",
                    fixedsize="true",
                    pos=_pos(x0 + layout.gutter / 2, cy),
                )
                + ";"
            )
        if row.note and layout.notes:
            note = row.note
            if row.failed:
                note = f'<font color="{render.RED}">{note}</font>'
            cell = (
                f'<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="0"><TR>'
                f'<TD WIDTH="{int(layout.notes)}" ALIGN="LEFT" BALIGN="LEFT">'
                f"<b>{row.number}.</b> {note}</TD></TR></TABLE>"
            )
            out.append(
                f"  {rid}_t "
                + _a(
                    label=f"<{cell}>",
                    shape="plaintext",
                    fontsize=str(SMALL),
                    pos=_pos(x0 + layout.notes_x + layout.notes / 2, cy),
                    tooltip=render.esc(row.tooltip) if row.tooltip else None,
                )
                + ";"
            )
        if prev is not None and row.joined:
            drawn.append(
                f"  {prev} -> {rid} "
                + _a(
                    color=render.RED if row.failed else ("#6a6a6a" if row.reply else render.SYN_COLOR),
                    style="dashed" if row.reply else "solid",
                    penwidth="2.4" if row.failed else "1.4",
                    arrowsize="0.8",
                )
                + ";"
            )
        prev = rid
        y += h + GAP
    # lane backgrounds, drawn first (under everything)
    height = y - body_top
    backgrounds = []
    for lane, w in zip(LANES, layout.lanes, strict=True):
        backgrounds.append(
            f"  {prefix}bg_{lane.replace('-', '_')} "
            + _a(
                label="",
                shape="box",
                style="filled",
                color=LANE_FILL[lane],
                fillcolor=LANE_FILL[lane],
                fixedsize="true",
                width=_inch(w - 4),
                height=_inch(height),
                pos=_pos(x0 + layout.lane_x(lane), body_top + height / 2),
            )
            + ";"
        )
    out[:0] = backgrounds
    out.extend(drawn)
    return y - y0


def _document(title_label: str, body: list[str]) -> str:
    head = [
        "digraph meshviz_flow {",
        "  graph "
        + _a(
            layout="neato",
            splines="false",
            overlap="true",
            outputorder="nodesfirst",
            charset="UTF-8",
            fontname="Helvetica",
            labelloc="t",
            labeljust="l",
            pad="0.2",
            label=f"<{title_label}>",
        )
        + ";",
        "  node " + _a(fontname="Helvetica", fontsize=str(FONT), margin="0.08,0.04") + ";",
        "  edge " + _a(fontname="Helvetica", fontsize=str(SMALL)) + ";",
    ]
    return "\n".join([*head, *body, "}"]) + "\n"


def story_to_flow_dot(story: Story, layout: Layout = FULL) -> str:
    """One connection's story as a lane diagram (DOT text with pinned positions; render with render.render_*)."""
    flow = flow_of(story, layout)
    body: list[str] = []
    _draw(flow, layout, x0=0, y0=0, prefix="", out=body)
    title = _title(flow.title, flow.lines, layout.width) + _legend()
    return _document(title, body)


# --------------------------------------------------------------------------
# REDIRECT vs TPROXY, drawn
# --------------------------------------------------------------------------


def _mark_differences(a: _Flow, b: _Flow) -> int:
    """Highlight the steps one flow takes and the other does not; returns how many steps differ in all."""
    ka = Counter(r.key for r in a.rows if r.kind == "step")
    kb = Counter(r.key for r in b.rows if r.kind == "step")
    n = 0
    for rows, other in ((a.rows, kb), (b.rows, ka)):
        seen: Counter[str] = Counter()
        for r in rows:
            if r.kind != "step":
                continue
            seen[r.key] += 1
            if seen[r.key] > other.get(r.key, 0):
                r.differs = True
                n += 1
    return n


def compare_modes(comparison: dict[str, Any]) -> list[str]:
    """The comparison's modes, REDIRECT first."""
    return sorted(comparison.get("modes") or ["REDIRECT", "TPROXY"], key=lambda m: 0 if m == "REDIRECT" else 1)


def compare_to_flow_dot(comparison: dict[str, Any], connection: int = 0, layout: Layout = NARROW) -> str:
    """Connection `connection` (0-based) of `meshviz.engine.fix.compare.compare()`'s output: both modes' flow diagrams
    side by side, REDIRECT on the left, with the differing steps highlighted. Raises ValueError for a connection
    the comparison does not have or one without the modes' stories."""
    conns = comparison.get("connections") or []
    if not 0 <= connection < len(conns):
        raise ValueError(f"the comparison has no connection #{connection + 1}")
    conn = conns[connection]
    stories = conn.get("stories") or {}
    modes = compare_modes(comparison)
    if not all(m in stories for m in modes):
        raise ValueError("the comparison was made before the modes' stories were kept: re-run the analysis")
    flows = [flow_of(Story.from_dict(stories[m]), layout) for m in modes]
    differing = _mark_differences(flows[0], flows[1]) if len(flows) == 2 else 0
    body: list[str] = []
    gap = 40.0
    for i, (mode, flow) in enumerate(zip(modes, flows, strict=True)):
        x0 = i * (layout.width + gap)
        verdict = (conn.get("verdicts") or {}).get(mode) or {}
        failure = verdict.get("failure")
        uploaded = "as uploaded" if comparison.get("as_uploaded") == mode else "derived"
        summary = ((conn.get("summaries") or {}).get(mode) or "").split(" - ")[0]
        outcome = f"fails: {failure}" if failure else "works"
        head = (
            f'<TABLE BORDER="0" CELLPADDING="0"><TR><TD WIDTH="{int(layout.width)}" ALIGN="LEFT" BALIGN="LEFT">'
            f'<font point-size="15"><b>{render.esc(mode)}</b></font> ({render.esc(uploaded)}): '
            f'<font color="{render.RED if failure else "#1b5e20"}"><b>{render.esc(outcome)}</b></font><br/>'
            f"{_br(render.wrapped(summary, int(layout.width / 6.3)))}"
            "</TD></TR></TABLE>"
        )
        body.append(
            f"  m{i}_head "
            + _a(label=f"<{head}>", shape="plaintext", fontsize=str(FONT), pos=_pos(x0 + layout.width / 2, 22))
            + ";"
        )
        _draw(flow, layout, x0=x0, y0=60, prefix=f"m{i}_", out=body)
    cn = conn.get("connection") or {}
    heading = f"REDIRECT vs TPROXY: {cn.get('client', '?')} -> pod port {cn.get('port', '?')}"
    title = (
        f'<font point-size="16"><b>{render.esc(heading)}</b></font>'
        f'<br align="left"/><font point-size="{FONT}">'
        + render.esc(f"{differing} step{'s' if differing != 1 else ''} taken in one mode only (highlighted)")
        + '</font><br align="left"/>'
        + _legend()
    )
    return _document(title, body)


# --------------------------------------------------------------------------
# A link preview: 1200 x 630 px (at 96 dpi), the verdict, the cause and the path in one line
# --------------------------------------------------------------------------

CARD_W, CARD_H = 900.0, 472.5  # points: 1200 x 630 px at 96 dpi
CARD_DPI = "96"


def card_steps(story: Story, limit: int = 5) -> list[_Row]:
    """The request path reduced to where it changes lanes, plus the failure: at most `limit` boxes."""
    flow = flow_of(story)
    groups: list[list[_Row]] = []
    for r in flow.rows:
        if r.kind == "heading":
            break
        if groups and groups[-1][0].lane == r.lane:
            groups[-1].append(r)
        else:
            groups.append([r])
    picked: list[_Row] = []
    for g in groups:
        # where Envoy ends up (its upstream bind) says more than where it starts; elsewhere, the first step
        chosen = g[-1] if g[0].lane == "envoy" else g[0]
        picked.extend(r for r in g if r.failed and r is not chosen and g.index(r) < g.index(chosen))
        picked.append(chosen)
        picked.extend(r for r in g if r.failed and r is not chosen and g.index(r) > g.index(chosen))
    failed = [r for r in flow.rows if r.failed]
    if failed and failed[0] not in picked:
        picked.append(failed[0])
    if len(picked) > limit:
        keep = [*picked[: limit - 2], *[r for r in picked[limit - 2 :] if r.failed][:1]]
        picked = [*keep, picked[-1]] if picked[-1] not in keep else keep
        picked = picked[:limit]
    return picked


def card_to_dot(story: Story, title: str, description: str) -> str:
    """A chat preview of the story: the verdict line, the cause and the path through the lanes, readable at
    1200 x 630 px (render with render.render_png)."""
    failure = story.verdict.failure_code
    color = render.RED if failure else "#1b5e20"
    body: list[str] = []
    body.append(
        "  bg "
        + _a(
            label="",
            shape="box",
            style="filled",
            color="white",
            fillcolor="white",
            fixedsize="true",
            width=_inch(CARD_W),
            height=_inch(CARD_H),
            pos=_pos(CARD_W / 2, CARD_H / 2),
        )
        + ";"
    )
    text = (
        f'<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="4"><TR><TD WIDTH="{int(CARD_W - 60)}" ALIGN="LEFT" '
        f'BALIGN="LEFT"><font point-size="13" color="#555555"><b>meshviz</b></font></TD></TR>'
        f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"><font point-size="24" color="{color}"><b>'
        f"{_br(render.wrapped(render.clean(title, 160), 58))}</b></font></TD></TR>"
        f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"><font point-size="17" color="#222222">'
        f"{_br(render.wrapped(render.clean(description, 260), 80))}</font></TD></TR></TABLE>"
    )
    body.append("  head " + _a(label=f"<{text}>", shape="plaintext", pos=_pos(CARD_W / 2, 95)) + ";")
    steps = card_steps(story)
    if steps:
        n = len(steps)
        slot = (CARD_W - 40) / n
        prev = None
        box_w = slot - 30
        chars = max(8, int(box_w / (13 * 0.58)))
        for i, r in enumerate(steps):
            lines: list[str] = []
            # the box's label lost its lane's wrapping: bold title (the first line of the node), then the rest
            bold, _, tail = r.label.partition("</b>")
            title, rest = " ".join(_plain(bold)), " ".join(_plain(tail))
            lines = [f"<b>{render.esc(x)}</b>" for x in textwrap.wrap(title, chars, break_long_words=True)[:2]]
            lines += [render.esc(x) for x in textwrap.wrap(rest, chars, break_long_words=True)]
            lines = lines[:6]
            lane = LANE_TITLES.get(r.lane, r.lane)
            nid = f"s{i}"
            body.append(
                f"  {nid} "
                + _a(
                    label=f'<<font point-size="11" color="#555555">{render.esc(lane)}</font><br/>{"<br/>".join(lines)}>',
                    shape="box",
                    style="rounded,filled",
                    color=render.RED if r.failed else "#555555",
                    fillcolor=render.FAIL_FILL if r.failed else LANE_FILL.get(r.lane, "white"),
                    penwidth="3" if r.failed else "1.5",
                    fontsize="13",
                    fixedsize="true",
                    width=_inch(box_w),
                    height=_inch(16 * (len(lines) + 1) + 14),
                    pos=_pos(20 + slot * i + slot / 2, 350),
                )
                + ";"
            )
            if prev is not None:
                body.append(
                    f"  {prev} -> {nid} "
                    + _a(color=render.RED if r.failed else render.SYN_COLOR, penwidth="2.5", arrowsize="1")
                    + ";"
                )
            prev = nid
    head = [
        "digraph meshviz_card {",
        "  graph "
        + _a(
            layout="neato",
            splines="false",
            overlap="true",
            outputorder="nodesfirst",
            charset="UTF-8",
            fontname="Helvetica",
            pad="0",
            dpi=CARD_DPI,
            bgcolor="white",
            # exactly the card: 900 x 472.5 points centred on it (1200 x 630 px at 96 dpi)
            viewport=f"{CARD_W:g},{CARD_H:g},1,{CARD_W / 2:g},{CARD_H / 2:g}",
        )
        + ";",
        "  node " + _a(fontname="Helvetica", fontsize="15", margin="0.1,0.06") + ";",
        "  edge " + _a(fontname="Helvetica") + ";",
    ]
    return "\n".join([*head, *body, "}"]) + "\n"
