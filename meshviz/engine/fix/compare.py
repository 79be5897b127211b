"""REDIRECT vs TPROXY, side by side, for the same pod and the same connections.

The pod as uploaded is one side; the other side is the same pod as Istio would
set it up in the other interception mode (`meshviz.engine.fix.modes`).  Every
connection runs through both, and the comparison lists, hop by hop: where the
SYN is captured, the address Envoy sees as downstream, Envoy's upstream bind,
what the application sees, how the reply finds its way back, and the outcome -
plus what each mode costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshviz.engine.core.defaults import DEFAULT_PROXY_UID
from meshviz.engine.fix.modes import evidence_in_mode, mode_fragment, mode_of
from meshviz.engine.fix.nft import backend_of
from meshviz.engine.pipeline.evidence import Evidence, profile_of, story_for
from meshviz.engine.story.model import Story, changed_fields

ASPECTS = (
    ("capture", "where the client's SYN is captured"),
    ("downstream_peer", "the address Envoy sees as downstream"),
    ("upstream_bind", "Envoy's upstream bind"),
    ("upstream_target", "what Envoy dials"),
    ("app_peer_ip", "what the application sees"),
    ("reply_path", "how the application's reply finds its way back"),
    ("outcome", "outcome"),
)


def costs(uid: int, gid: int, mark: int, table: int, backend: str = "iptables") -> dict[str, list[str]]:
    """What each mode costs, in the pod's own identity, mark and table (`backend`: the rules' spelling)."""
    if backend == "nftables":
        owner, connmark, nat = f"`meta skuid {uid}`", "`ct mark` save/restore", "nat `redirect`"
    else:
        owner, connmark, nat = f"`-m owner --uid-owner {uid}`", "CONNMARK save/restore", "conntrack NAT (REDIRECT)"
    return {
        "REDIRECT": [
            f"no extra privileges: the sidecar runs as uid {uid} without NET_ADMIN",
            "the application sees 127.0.0.6 (Istio >= 1.10) or 127.0.0.1 instead of the client address",
            f"no policy routing; {nat} on every inbound connection",
        ],
        "TPROXY": [
            f"the sidecar needs NET_ADMIN and runs as uid 0 (gid {gid}): {owner} rules no "
            "longer match Envoy's traffic, only the gid rules do",
            f"needs the policy route `ip rule fwmark {mark} lookup {table}` / `ip route local default dev lo table "
            f"{table}` and the {connmark} rules; any mark {mark} used elsewhere in the pod collides",
            f"the application sees the client address (original_src); the reply path depends on mark {mark}",
        ],
    }


@dataclass(frozen=True)
class Side:
    mode: str
    evidence: Evidence
    story: Story


def _row_value(story: Story, aspect: str) -> Any:
    if aspect == "app_peer_ip":
        return story.verdict.app_peer_ip
    if aspect == "outcome":
        return story.summary.split(" - ")[0]
    if aspect == "upstream_bind":
        b = story.facts.get("upstream_bind")
        mark = story.facts.get("upstream_mark")
        return f"{b}, SO_MARK {mark}" if b and mark else b
    return story.facts.get(aspect)


def compare(ev: Evidence, connections: list[tuple[str, int]]) -> dict[str, Any]:
    """Run every (client, port) connection through the pod as given and in the other mode."""
    notes: list[str] = []
    mode = mode_of(ev)
    other_mode = "TPROXY" if mode == "REDIRECT" else "REDIRECT"
    backend = backend_of(ev)
    prof = profile_of(ev)
    try:
        other = evidence_in_mode(ev, other_mode, notes)
    except ValueError as exc:
        # The other mode cannot be built from this evidence (nft -j JSON cannot be patched): say so, compare nothing.
        why = f"the {other_mode} side cannot be built from this evidence: {exc}"
        return {
            "modes": [mode, other_mode],
            "as_uploaded": mode,
            "derived": {"mode": other_mode, "how": [*notes, why], "nft_fragment": None},
            "backend": backend,
            "connections": [],
            "costs": {},
            "notes": [why],
        }
    out_conns = []
    for client, port in connections:
        a = Side(mode, ev, story_for(ev, client=client, port=port))
        b = Side(other_mode, other, story_for(other, client=client, port=port))
        rows = []
        for key, label in ASPECTS:
            va, vb = _row_value(a.story, key), _row_value(b.story, key)
            rows.append({"aspect": key, "label": label, mode: va, other_mode: vb, "differs": va != vb})
        va_, vb_ = a.story.verdict.to_dict(), b.story.verdict.to_dict()
        verdict_diff = {k: {mode: va_.get(k), other_mode: vb_.get(k)} for k in changed_fields(va_, vb_)}
        out_conns.append(
            {
                "connection": {"client": client, "port": port},
                "rows": rows,
                "verdicts": {mode: va_, other_mode: vb_},
                "differences": verdict_diff,
                "summaries": {mode: a.story.summary, other_mode: b.story.summary},
                "stories": {mode: a.story.to_dict(), other_mode: b.story.to_dict()},
            }
        )
    envoy_change = (
        f"transparent listeners and original_src (mark {prof.tproxy_mark}) on virtualInbound"
        if other_mode == "TPROXY"
        else "original_src and transparent removed"
    )
    regenerated = (
        f"Istio's nft tables (istio-proxy-*) regenerated by meshviz's Istio nftables generator in {other_mode} mode "
        "from the settings inferred from the uploaded nft rules; every other table kept"
        if backend == "nftables"
        else f"rules regenerated by meshviz's Istio generator in {other_mode} mode from the settings inferred from "
        "the uploaded rules"
    )
    how = [
        *notes,
        regenerated,
        f"Envoy: {envoy_change}",
        f"sidecar identity: uid {other.proxy_uid}, gid {other.proxy_gid}"
        + (", NET_ADMIN" if other.proxy_net_admin else ""),
    ]
    return {
        "modes": [mode, other_mode],
        "as_uploaded": mode,
        "derived": {"mode": other_mode, "how": how, "nft_fragment": mode_fragment(ev, other_mode)},
        "backend": backend,
        "connections": out_conns,
        "costs": {
            m: costs(
                prof.proxy_uid if prof.proxy_uid else DEFAULT_PROXY_UID,
                prof.proxy_gid,
                prof.tproxy_mark,
                prof.tproxy_table,
                backend,
            )[m]
            for m in (mode, other_mode)
        },
    }
