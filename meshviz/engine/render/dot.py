"""Graphviz DOT for every diagram: escaping, the diagram being built (nodes, edges, the four clusters) and rendering
with Debian's `dot` to SVG or PNG, bounded in time and size, cached by `diagram_key`.

The story's graph is render/story_dot.py, the flow diagram in lanes render/flowchart.py, the structure graph
explorer/structure.py; each escapes every label it writes with `esc`/`wrapped` from here.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import select
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshviz.engine.core.trace import Disposition

DOT_BINARY = "/usr/bin/dot"
RENDER_VERSION = "1"  # part of diagram_key: bump when the renderer's output changes
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_DOT_BYTES = 1024 * 1024
WRAP = 56  # characters per label line
MAX_LABEL = 400  # characters of one user-supplied value shown in a label

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
RED = "#c62828"
SYN_COLOR = "#1f4e79"
REPLY_COLOR = "#6a6a6a"
FAIL_FILL = "#fde0dc"
DIFF_FILL = "#fff3c4"
BAD_DISPOSITIONS = frozenset(
    {
        Disposition.DROPPED,
        Disposition.REJECTED,
        Disposition.NO_ROUTE,
        Disposition.NO_SOCKET,
        Disposition.LOOP,
        Disposition.UNSUPPORTED,
    }
)


class DiagramError(RuntimeError):
    """Graphviz could not render a diagram: missing binary, timeout, oversized output or a DOT error."""


# --------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: object, limit: int = MAX_LABEL) -> str:
    """User data as one line of plain text: no control characters, newlines as spaces, bounded length."""
    s = _CONTROL.sub("?", str(text)).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _html(s: str) -> str:
    # Graphviz expands \G, \N, \E... even inside HTML-like labels (entities too): double every backslash
    return html.escape(s, quote=True).replace("\\", "\\\\")


def esc(text: object, limit: int = MAX_LABEL) -> str:
    """Escape user data for an HTML-like DOT label (and so for the SVG Graphviz writes)."""
    return _html(clean(text, limit))


def wrapped(text: object, width: int = WRAP, limit: int = MAX_LABEL) -> str:
    """Escaped text broken into lines of at most `width` characters (`<br/>` between them)."""
    lines = textwrap.wrap(clean(text, limit), width=width, break_long_words=True, break_on_hyphens=False) or [""]
    return '<br align="left"/>'.join(_html(line) for line in lines) + '<br align="left"/>'


def _attrs(**kw: str | None) -> str:
    """DOT attributes; values are ours (colours, styles) or already-built HTML-like labels (`<...>`)."""
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        out.append(f"{k}={v}" if v.startswith("<") else f'{k}="{v}"')
    return "[" + ", ".join(out) + "]"


# --------------------------------------------------------------------------
# The diagram being built
# --------------------------------------------------------------------------


@dataclass
class _Node:
    id: str
    cluster: str  # client | pod-kernel | envoy | application
    label: str  # HTML-like body, escaped
    failed: bool = False
    shape: str = "box"


@dataclass
class _Edge:
    src: str
    dst: str
    label: str  # escaped HTML-like body, without the number
    reply: bool = False
    failed: bool = False


@dataclass
class _Diagram:
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    counter: int = 0

    def node(
        self, cluster: str, label: str, *, key: str | None = None, failed: bool = False, shape: str = "box"
    ) -> str:
        if key is not None and key in self.nodes:
            n = self.nodes[key]
            n.failed = n.failed or failed
            return key
        self.counter += 1
        nid = key or f"n{self.counter}"
        self.nodes[nid] = _Node(nid, cluster, label, failed, shape)
        return nid

    def edge(self, src: str, dst: str, label: str, *, reply: bool = False, failed: bool = False) -> None:
        self.edges.append(_Edge(src, dst, label, reply, failed))


CLUSTERS = (
    ("client", "client / network", "#f4f8fb"),
    ("pod-kernel", "pod kernel (netfilter, routing, sockets)", "#f7f7f7"),
    ("envoy", "Envoy sidecar", "#f3f9f1"),
    ("application", "application", "#fbf6ee"),
)


def _title_label(title: str, lines: Sequence[str], legend: bool) -> str:
    body = f'<font point-size="16"><b>{wrapped(title, 100)}</b></font>'
    for line in lines:
        body += f'<font point-size="11">{wrapped(line, 120)}</font>'
    if legend:
        body += (
            '<font point-size="10" color="#444444">legend: solid = SYN path &#160; dashed = reply (SYN-ACK) &#160; '
            f'<font color="{RED}">red = where it fails</font> &#160; '
            "edge labels: the rule or lookup that decided the step</font>"
        )
    return f"<{body}>"


def _emit(d: _Diagram, title: str, lines: Sequence[str], *, rankdir: str = "TB") -> str:
    out = [
        "digraph meshviz {",
        f"  graph {_attrs(rankdir=rankdir, charset='UTF-8', fontname='Helvetica', labelloc='t', labeljust='l', nodesep='0.35', ranksep='0.4', newrank='true', label=_title_label(title, lines, True))};",
        f"  node {_attrs(fontname='Helvetica', fontsize='11', shape='box', style='rounded,filled', fillcolor='white')};",
        f"  edge {_attrs(fontname='Helvetica', fontsize='9')};",
    ]
    for cid, ctitle, fill in CLUSTERS:
        members = [n for n in d.nodes.values() if n.cluster == cid]
        if not members:
            continue
        out.append(f"  subgraph cluster_{cid.replace('-', '_')} {{")
        out.append(
            f"    graph {_attrs(label=f'<<b>{esc(ctitle)}</b>>', style='rounded,filled', fillcolor=fill, color='#999999')};"
        )
        for n in members:
            color = RED if n.failed else "#333333"
            fill_n = FAIL_FILL if n.failed else "white"
            pen = "2" if n.failed else "1"
            out.append(
                f"    {n.id} {_attrs(label=f'<{n.label}>', color=color, fillcolor=fill_n, penwidth=pen, shape=n.shape)};"
            )
        out.append("  }")
    for i, e in enumerate(d.edges, 1):
        color = RED if e.failed else (REPLY_COLOR if e.reply else SYN_COLOR)
        style = "dashed" if e.reply else "solid"
        num = f"<b>{i}</b>{' (reply)' if e.reply else ''}"
        label = f'<{num}<br align="left"/>{e.label}>' if e.label else f"<{num}>"
        out.append(
            f"  {e.src} -> {e.dst} "
            + _attrs(
                label=label,
                color=color,
                fontcolor=RED if e.failed else "#222222",
                style=style + (",bold" if e.failed else ""),
                penwidth="2.2" if e.failed else "1.2",
            )
            + ";"
        )
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Rendering with Graphviz
# --------------------------------------------------------------------------


def diagram_key(dot_text: str, fmt: str) -> str:
    """A content hash for caching a rendered diagram: sha256 over the renderer version, format and DOT."""
    h = hashlib.sha256()
    for part in (RENDER_VERSION, fmt, dot_text):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def render_svg(dot_text: str, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Run Graphviz `dot -Tsvg`; raises DiagramError on failure, timeout or output over `max_bytes`."""
    return render(dot_text, "svg", timeout=timeout, max_bytes=max_bytes)


def render_png(dot_text: str, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Run Graphviz `dot -Tpng`; raises DiagramError on failure, timeout or output over `max_bytes`."""
    return render(dot_text, "png", timeout=timeout, max_bytes=max_bytes)


def render(
    dot_text: str,
    fmt: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    binary: str = DOT_BINARY,
) -> bytes:
    if fmt not in ("svg", "png"):
        raise DiagramError(f"unsupported diagram format {fmt!r} (svg or png)")
    data = dot_text.encode("utf-8")
    if len(data) > MAX_DOT_BYTES:
        raise DiagramError(f"the diagram is too large to render ({len(data)} bytes of DOT, limit {MAX_DOT_BYTES})")
    if not os.path.exists(binary):
        raise DiagramError(f"Graphviz is not installed: {binary} not found")
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
        stdin.write(data)
        stdin.seek(0)
        try:
            proc = subprocess.Popen(
                [binary, f"-T{fmt}"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                close_fds=True,
            )
        except OSError as e:
            raise DiagramError(f"cannot run Graphviz ({binary}): {e}") from e
        try:
            out = _read_bounded(proc, timeout, max_bytes, fmt)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        if proc.returncode != 0:
            stderr.seek(0)
            msg = stderr.read(2000).decode("utf-8", "replace").strip()
            raise DiagramError(f"Graphviz failed to render the diagram (exit {proc.returncode}): {msg}")
    return out


def _read_bounded(proc: subprocess.Popen[bytes], timeout: float, max_bytes: int, fmt: str) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DiagramError(f"Graphviz took longer than {timeout:g}s to render the diagram ({fmt}); gave up")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise DiagramError(f"the rendered diagram ({fmt}) is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()) or 0.01)
    except subprocess.TimeoutExpired as e:
        raise DiagramError(f"Graphviz took longer than {timeout:g}s to render the diagram ({fmt}); gave up") from e
    return b"".join(chunks)


def node_count(dot_text: str) -> int:
    """How many nodes a diagram from this module has (for tests and size checks)."""
    return len(re.findall(r"^\s+(?:n\d+|client|network|application|envoy_listener_\w+) \[", dot_text, re.M))


__all__ = [
    "DiagramError",
    "diagram_key",
    "render",
    "render_png",
    "render_svg",
]
