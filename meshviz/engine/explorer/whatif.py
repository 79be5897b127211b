"""What-if editing: change the evidence in a scratch copy and re-trace every connection.

    edits = [Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=1, rule="-p tcp --dport 22 -j RETURN")]
    result = whatif(ev, connections, edits)
    result.diff        # per connection: the verdict before and after
    result.patch       # unified diffs of the changed evidence texts (a/iptables-save -> b/iptables-save ...)

The scratch copy is an `Evidence` (texts): every edit rewrites the texts, so the result is always something a user
could have uploaded.  Rule edits (insert, replace, delete, move) touch only the lines of the rule concerned, in the
style of the neighbouring lines (`-A CHAIN ...` in iptables-save output, `iptables -t nat -A ...` for commands);
every other line stays byte-identical.  When the rule's line cannot be edited in place (it is an `-I CHAIN N` line of
a restore payload, a comma list expanded into several rules, ...) the edit is written as an `-I`/`-D`/`-R` command at
the end of that table's block, which iptables-restore applies in order.  Either way the edited text is parsed again
and the chain must hold exactly the expected rules; otherwise the edit is refused with an error.

Edits are validated one by one: a bad rule text gives a `ParseError` whose source is `edit N` (1-based), with the
column inside the rule text and the rule text itself; an out-of-range index, an unknown chain, listener or cluster is
an error too, never a guess.  A failing edit is skipped (the others still apply) and `whatif` does not re-trace
while any edit failed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from meshviz.engine.core.errors import EngineInputError, ParseError
from meshviz.engine.explorer.edits import (
    BACKENDS,
    EDIT_FIELDS,
    FILE_NAMES,
    OPS,
    TEXT_KINDS,
    Edit,
    EditResult,
    _EditFailed,
    parse_edits,
)
from meshviz.engine.explorer.nft_edits import NFT_OPS, RULE_OPS, nft_edit
from meshviz.engine.explorer.rule_surgery import _err, _rule_edit
from meshviz.engine.explorer.text_edits import _envoy_edit, _sysctl_edit, _text_edit
from meshviz.engine.pipeline.evidence import Evidence, connection_story, verdict_line
from meshviz.engine.story.model import Story, changed_fields


def apply_edits(ev: Evidence, edits: Sequence[Edit]) -> EditResult:
    """Apply the edits in order to a copy of the evidence; a failing edit is skipped and reported."""
    errors: list[ParseError] = []
    changes: list[str] = []
    current = ev
    for n, edit in enumerate(edits, 1):
        try:
            if edit.backend not in (None, *BACKENDS):
                raise _err(n, f"unknown backend {edit.backend!r} (one of {', '.join(BACKENDS)})", str(edit.backend))
            if edit.op in NFT_OPS or (edit.op in RULE_OPS and edit.backend == "nft"):
                if edit.backend == "iptables":
                    raise _err(
                        n,
                        f"{edit.op} is an nft edit (backend nft); an iptables chain's policy is its `:CHAIN POLICY` line (set_text)",
                    )
                current, change = nft_edit(current, edit, n)
            elif edit.op in RULE_OPS:
                current, change = _rule_edit(current, edit, n)
            elif edit.op in ("set_text", "append_text"):
                current, change = _text_edit(current, edit, n)
            elif edit.op == "sysctl":
                current, change = _sysctl_edit(current, edit, n)
            elif edit.op in ("envoy_bind", "envoy_original_src"):
                current, change = _envoy_edit(current, edit, n)
            else:
                raise _err(n, f"unknown edit op {edit.op!r} (one of {', '.join(OPS)})", str(edit.op))
            changes.append(change)
        except _EditFailed as e:
            errors.extend(e.errors)
    return EditResult(current, tuple(errors), tuple(changes))


# --------------------------------------------------------------------------
# Re-tracing and verdicts
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _cached_story(ev: Evidence, key: tuple[tuple[str, Any], ...]) -> Story:
    return connection_story(ev, dict(key))


def _conn_key(conn: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), v if isinstance(v, int | str) else str(v)) for k, v in conn.items()))


def retrace(ev: Evidence, connections: Sequence[Mapping[str, Any]]) -> list[Story]:
    """Every connection's story on this evidence (stored shape, see `evidence.connection_story`).

    Raises EngineInputError when the evidence does not parse and ValueError for a malformed connection.
    Stories are cached per (evidence, connection), so re-tracing unchanged evidence is free.
    """
    return [_cached_story(ev, _conn_key(c)) for c in connections]


def stored(stories: Sequence[Story], connections: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stories in the stored shape (`Story.to_dict()` plus "connection" and "verdict_line")."""
    return [
        {"connection": dict(c), "verdict_line": verdict_line(s), **s.to_dict()}
        for s, c in zip(stories, connections, strict=True)
    ]


#: The connections analysed by default (as meshviz.analyses.services does): a representative client to each
#: application port and the application opening one outbound connection; nothing is dialled.
DEFAULT_CLIENT = "10.255.0.1:40000"
DEFAULT_OUTBOUND_DST = "203.0.113.10:443"
DEFAULT_APP_UID = 1000
DEFAULT_APP_GID = 1000
DEFAULT_APP_PORT = 8080
MAX_DEFAULT_INBOUND = 16


def inbound_cluster_ports(envoy: str | None) -> list[int]:
    """The ports of the dump's inbound clusters (`inbound|PORT|...`), in order."""
    if not envoy:
        return []
    from meshviz.engine.envoy.parser import parse_config_dump

    ports: list[int] = []
    for cluster in parse_config_dump(envoy, source="envoy").config.clusters:  # the story's parse (load_pod's source)
        parts = cluster.name.split("|")
        if parts[0] == "inbound" and len(parts) > 1 and parts[1].isdigit():
            port = int(parts[1])
            if 0 < port < 65536 and port not in ports:
                ports.append(port)
    return ports


def default_connections(ev: Evidence) -> list[dict[str, Any]]:
    """One inbound connection per application port (`app_ports`, else the dump's inbound clusters, else 8080) and
    one outbound connection, in the stored shape (mirrors meshviz.analyses.services.default_connections)."""
    from meshviz.engine.evidence.podspec import ISTIO_PORT_RANGE
    from meshviz.engine.pipeline.evidence import identity_of

    # The application's ports: given, else the dump's INCLUDE_INBOUND_PORTS / POD_PORTS, else its inbound
    # clusters; never Istio's own 15000-15090 (a user asks for those explicitly).
    ports = (
        list(ev.app_ports)
        or list(identity_of(ev).app_ports)
        or [p for p in inbound_cluster_ports(ev.envoy) if p not in ISTIO_PORT_RANGE]
        or [DEFAULT_APP_PORT]
    )
    conns: list[dict[str, Any]] = [
        {"direction": "inbound", "client": DEFAULT_CLIENT, "port": p} for p in ports[:MAX_DEFAULT_INBOUND]
    ]
    conns.append(
        {
            "direction": "outbound",
            "dst": outbound_destination(ev),
            "app_uid": DEFAULT_APP_UID,
            "app_gid": DEFAULT_APP_GID,
        }
    )
    dns = dns_query_destination(ev)
    if dns is not None:
        conns.append({"direction": "udp", "dst": dns, "app_uid": DEFAULT_APP_UID, "app_gid": DEFAULT_APP_GID})
    return conns


#: Istio's DNS capture as the rules write it: a UDP port-53 redirect to istio-agent's DNS proxy on 15053, in
#: iptables-save (`-p udp ... --dport 53 ... -j REDIRECT --to-port(s) 15053`) and nft (`udp dport 53 ... redirect to
#: :15053`, listed or as an `nft -f` script).
_IPT_DNS_CAPTURE = re.compile(r"(?:^|\s)-[AI]\s.*-p udp\b.*--dport 53\b.*-j REDIRECT --to-ports? 15053\b")
_IPT_DST = re.compile(r"(?<!! )-d (\S+)")
_NFT_DNS_CAPTURE = re.compile(r"\budp dport 53\b.*\bredirect to :15053\b")
_NFT_DST = re.compile(r"\bip6? daddr (?!!=)(\S+)")
#: The nameserver a capture-all rule set (no server named) is asked: kube-dns's conventional ClusterIP.
DEFAULT_DNS_SERVER_V4 = "10.96.0.10:53"
DEFAULT_DNS_SERVER_V6 = "[fd00:10:96::a]:53"


def dns_query_destination(ev: Evidence) -> str | None:
    """Where the default DNS query goes when the pod's rules capture DNS (Istio's ISTIO_META_DNS_CAPTURE): the first
    nameserver a capturing rule names (`-d 10.96.0.10/32`, `ip daddr 10.96.0.10`), else - the rules capture every
    port-53 datagram - kube-dns's conventional ClusterIP. None: the rules capture no DNS, no default query."""
    import ipaddress as _ip

    found_v6_capture_all = False
    sources = ((ev.iptables, _IPT_DNS_CAPTURE, _IPT_DST, 4), (ev.ip6tables, _IPT_DNS_CAPTURE, _IPT_DST, 6))
    nft = ((ev.nftables, _NFT_DNS_CAPTURE, _NFT_DST, 0),)
    captured = False
    for text, capture, dst_re, version in sources + nft:
        for line in (text or "").splitlines():
            line = line.strip()
            if "15053" not in line or not capture.search(line):
                continue
            captured = True
            m = dst_re.search(line)
            if m is None:
                found_v6_capture_all = found_v6_capture_all or version == 6
                continue
            try:
                net = _ip.ip_network(m.group(1), strict=False)
            except ValueError:
                continue
            if net.num_addresses != 1:
                continue
            host = net.network_address
            return f"[{host}]:53" if host.version == 6 else f"{host}:53"
    if not captured:
        return None
    only_v6 = found_v6_capture_all and not any(
        capture.search(line) and "15053" in line
        for text, capture, _d, v in sources + nft
        if v != 6
        for line in (text or "").splitlines()
    )
    return DEFAULT_DNS_SERVER_V6 if only_v6 else DEFAULT_DNS_SERVER_V4


def outbound_destination(ev: Evidence) -> str:
    """A destination the rules capture: inside the first range Istio's outbound rules include
    (`--include-outbound-ip-ranges`: `-A ISTIO_OUTPUT -d RANGE -j ISTIO_REDIRECT`), else the default (captured
    when everything is)."""
    import ipaddress as _ip

    from meshviz.engine.pipeline.evidence import pod_of

    for rs in pod_of(ev).snapshot.rulesets:
        nat = rs.table("nat")
        chain = nat.chain("ISTIO_OUTPUT") if nat else None
        for rule in chain.rules if chain else ():
            if rule.target is None or rule.target.name != "ISTIO_REDIRECT":
                continue
            if rule.dst is None or rule.dst.negated:
                return DEFAULT_OUTBOUND_DST
            net = rule.dst.network
            if net.num_addresses > 2:
                host = net.network_address + min(10, net.num_addresses - 2)
                port = DEFAULT_OUTBOUND_DST.rsplit(":", 1)[1]
                return f"[{host}]:{port}" if isinstance(host, _ip.IPv6Address) else f"{host}:{port}"
    return DEFAULT_OUTBOUND_DST


@dataclass(frozen=True)
class VerdictChange:
    number: int
    connection: dict[str, Any]
    before: str
    after: str
    changed: bool
    before_verdict: dict[str, Any]
    after_verdict: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "connection": dict(self.connection),
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
            "before_verdict": dict(self.before_verdict),
            "after_verdict": dict(self.after_verdict),
            "changed_fields": changed_fields(self.before_verdict, self.after_verdict),
        }


def verdict_diff(
    before: Sequence[Story], after: Sequence[Story], connections: Sequence[Mapping[str, Any]]
) -> list[VerdictChange]:
    """Per connection (1-based number): the verdict line and fields before and after, and whether they differ."""
    if not len(before) == len(after) == len(connections):
        raise ValueError(f"{len(before)} stories before, {len(after)} after, {len(connections)} connections")
    out = []
    for number, (b, a, c) in enumerate(zip(before, after, connections, strict=True), 1):
        bl, al = verdict_line(b), verdict_line(a)
        out.append(
            VerdictChange(
                number=number,
                connection=dict(c),
                before=bl,
                after=al,
                changed=b.verdict != a.verdict or bl != al,
                before_verdict=b.verdict.to_dict(),
                after_verdict=a.verdict.to_dict(),
            )
        )
    return out


def evidence_patch(before: Evidence, after: Evidence) -> str:
    """A unified diff of every evidence text that changed (`a/iptables-save` -> `b/iptables-save` ...)."""
    out: list[str] = []
    for f, name in FILE_NAMES.items():
        a = getattr(before, f) or ""
        b = getattr(after, f) or ""
        if a == b:
            continue
        out.extend(
            _unified_diff(_split(a), _split(b), f"a/{name}" if a else "/dev/null", f"b/{name}" if b else "/dev/null")
        )
    return "".join(out)


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")
_CONTEXT = 3  # difflib.unified_diff's default


def _unified_diff(a: list[str], b: list[str], fromfile: str, tofile: str) -> list[str]:
    """`difflib.unified_diff(a, b, fromfile, tofile)` of the part that differs: the lines both share at the start and
    the end, beyond the hunks' context, are left out of difflib's work (a one-rule edit of a node's 109,000 lines
    took a second) and the hunks' line numbers shifted back."""
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    skip = max(0, head - _CONTEXT)
    keep_end = max(0, tail - _CONTEXT)
    diff = difflib.unified_diff(a[skip : len(a) - keep_end], b[skip : len(b) - keep_end], fromfile, tofile)
    if not skip:
        return list(diff)

    def shifted(m: re.Match[str]) -> str:
        return f"@@ -{int(m[1]) + skip}{m[2] or ''} +{int(m[3]) + skip}{m[4] or ''} @@"

    return [_HUNK.sub(shifted, line, count=1) if line.startswith("@@") else line for line in diff]


def _split(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


@dataclass(frozen=True)
class WhatIf:
    errors: tuple[ParseError, ...]
    evidence: Evidence
    before: tuple[Story, ...]
    stories: tuple[Story, ...]
    diff: tuple[VerdictChange, ...]
    patch: str
    connections: tuple[dict[str, Any], ...] = ()
    changes: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: errors, the edited evidence, stories (stored shape), the verdict diff and the patch."""
        return {
            "ok": self.ok,
            "errors": [e.to_dict() for e in self.errors],
            "edits": [e.to_dict() for e in self.edits],
            "changes": list(self.changes),
            "evidence": {f: getattr(self.evidence, f) for f in FILE_NAMES},
            "stories": stored(self.stories, self.connections) if self.stories else [],
            "diff": [d.to_dict() for d in self.diff],
            "changed": sum(1 for d in self.diff if d.changed),
            "patch": self.patch,
        }


def whatif(
    ev: Evidence,
    connections: Sequence[Mapping[str, Any]],
    edits: Sequence[Edit],
    *,
    before: Sequence[Story] | None = None,
) -> WhatIf:
    """Apply the edits to a scratch copy, re-trace every connection and diff the verdicts against the original.

    `before` (the original stories, e.g. from a previous call) saves re-tracing the original.  With edit errors
    nothing is re-traced (`stories` and `diff` are empty); with evidence the engine cannot load after the edits,
    the load errors are returned the same way.
    """
    conns = tuple(dict(c) for c in connections)
    result = apply_edits(ev, edits)
    patch = evidence_patch(ev, result.evidence)
    empty = WhatIf(result.errors, result.evidence, (), (), (), patch, conns, result.changes, tuple(edits))
    if result.errors:
        return empty
    try:
        old = list(before) if before is not None else retrace(ev, conns)
        new = retrace(result.evidence, conns)
    except EngineInputError as e:
        return replace(empty, errors=tuple(e.errors))
    diff = verdict_diff(old, new, conns)
    return WhatIf((), result.evidence, tuple(old), tuple(new), tuple(diff), patch, conns, result.changes, tuple(edits))


__all__ = [
    "BACKENDS",
    "EDIT_FIELDS",
    "OPS",
    "TEXT_KINDS",
    "Edit",
    "EditResult",
    "VerdictChange",
    "WhatIf",
    "apply_edits",
    "default_connections",
    "dns_query_destination",
    "evidence_patch",
    "parse_edits",
    "retrace",
    "stored",
    "verdict_diff",
    "whatif",
]
