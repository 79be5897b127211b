"""The explorer's packet composer: a packet described in a form, traced through the pod, the rules it hit linked."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from meshviz.analyses import access, services
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.engine.api import (
    DEFAULT_POD_IFACE,
    Family,
    Packet,
    Sender,
    Trace,
    structure,
    trace,
)
from meshviz.web.explorer import (
    ENTRIES,
    FAMILIES,
    HOOKS,
    PROTOCOLS,
    BadInput,
    Pod,
    _bad_input_response,
    _base_context,
    _error,
    _pod,
    _pod_family,
    _rule_link,
    _stories,
    _structure_svg,
    _wants_fragment,
    _wants_json,
    simulation_throttled,
)

# --------------------------------------------------------------------------
# packet composer
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Composition:
    """A packet to trace and where it enters the pod."""

    packet: Packet
    entry: str
    iface: str = DEFAULT_POD_IFACE
    uid: int | None = None
    gid: int | None = None
    mark: int = 0
    transparent: bool = False
    params: dict[str, str] = field(default_factory=dict)  # the normalised query string


def composer_defaults(analysis: Analysis) -> dict[str, str]:
    ports = [int(p) for p in analysis.app_ports] or [services.DEFAULT_APP_PORT]
    client, _, cport = services.DEFAULT_CLIENT.partition(":")
    return {
        "entry": "iface",
        "iface": _pod(analysis).profile.pod_iface,
        "proto": "tcp",
        "src": client,
        "sport": cport,
        "dst": str(analysis.pod_ip),
        "dport": str(ports[0]),
        "uid": str(services.DEFAULT_APP_UID),
        "gid": str(services.DEFAULT_APP_GID),
        "mark": "0",
        "transparent": "",
    }


def _int_field(values: dict[str, str], name: str, lo: int, hi: int, errors: list[dict[str, Any]]) -> int | None:
    text = values.get(name, "").strip()
    if text == "":
        return None
    try:
        v = int(text, 0)
    except ValueError:
        errors.append(_error(name, f"{name} must be a number from {lo} to {hi}, not {text!r}", text))
        return None
    if not lo <= v <= hi:
        errors.append(_error(name, f"{name} must be from {lo} to {hi}, not {v}", text))
        return None
    return v


def parse_composition(query: dict[str, str], analysis: Analysis, pod: Pod) -> Composition:
    """The packet described by the query (defaults for what is missing); BadInput naming each bad field."""
    values = {**composer_defaults(analysis), **{k: v for k, v in query.items() if k in composer_defaults(analysis)}}
    errors: list[dict[str, Any]] = []
    entry = values["entry"]
    if entry not in ENTRIES:
        errors.append(_error("entry", f"entry must be one of {', '.join(ENTRIES)}, not {entry!r}", entry))
    proto = values["proto"].lower()
    if proto not in PROTOCOLS:
        errors.append(_error("proto", f"proto must be one of {', '.join(PROTOCOLS)}, not {proto!r}", values["proto"]))
    addrs: dict[str, Any] = {}
    for name in ("src", "dst"):
        text = values[name].strip()
        try:
            addrs[name] = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            errors.append(_error(name, f"{name} must be an IP address, not {text!r}", text))
    if len(addrs) == 2 and addrs["src"].version != addrs["dst"].version:
        errors.append(
            _error("dst", f"src {addrs['src']} and dst {addrs['dst']} are of different families", values["dst"])
        )
    sport = _int_field(values, "sport", 0, 65535, errors)
    dport = _int_field(values, "dport", 0, 65535, errors)
    mark = _int_field(values, "mark", 0, 0xFFFFFFFF, errors)
    uid = gid = None
    if entry == "local":
        uid = _int_field(values, "uid", 0, 0xFFFFFFFF, errors)
        gid = _int_field(values, "gid", 0, 0xFFFFFFFF, errors)
        if uid is None and not any(e["source"] == "uid" for e in errors):
            errors.append(_error("uid", "a packet sent by a local process needs its uid"))
        if gid is None and not any(e["source"] == "gid" for e in errors):
            errors.append(_error("gid", "a packet sent by a local process needs its gid"))
    elif entry == "envoy":
        uid, gid = pod.proxy_uid, pod.proxy_gid
    iface = values["iface"].strip()
    if entry == "iface" and pod.snapshot.interface(iface) is None:
        names = ", ".join(i.name for i in pod.snapshot.interfaces)
        errors.append(_error("iface", f"the pod has no interface {iface!r} (it has {names})", iface))
    if errors:
        raise BadInput(errors)
    packet = Packet(
        src=addrs["src"],
        dst=addrs["dst"],
        protocol=proto,
        sport=sport or 0,
        dport=dport or 0,
        tcp_flags=frozenset({"SYN"}) if proto == "tcp" else frozenset(),
        mark=mark or 0,
    )
    params = {k: values[k] for k in ("entry", "proto", "src", "sport", "dst", "dport", "mark")}
    if entry == "iface":
        params["iface"] = iface
    if entry == "local":
        params.update(uid=values["uid"], gid=values["gid"])
    transparent = values.get("transparent", "") not in ("", "0", "false", "off")
    if transparent:
        params["transparent"] = "1"
    return Composition(packet, entry, iface, uid, gid, mark or 0, transparent, params)


def compose(pod: Pod, c: Composition) -> list[Trace]:
    """Trace the composed packet through the pod (one trace per statistic branch)."""
    if c.entry == "iface":
        return trace(pod.snapshot, c.packet, in_iface=c.iface)
    name = "envoy" if c.entry == "envoy" else f"process uid {c.uid}"
    sender = Sender(uid=c.uid, gid=c.gid, mark=c.mark, transparent=c.transparent, name=name)
    return trace(pod.snapshot, c.packet, sender=sender)


def _trace_view(t: Trace, link: Callable[[str, str, int | None], str]) -> dict[str, Any]:
    steps = []
    for hop in t.hops:
        for s in hop.steps:
            d = s.to_dict()
            d["hop"] = hop.name
            d["where"] = hop.node
            if s.table and s.chain and s.index:
                d["url"] = link(s.table, s.chain, s.index)
                d["node"] = structure.node_id("rule", s.table, s.chain, s.index)
            elif s.table and s.chain:
                d["node"] = structure.node_id("chain", s.table, s.chain)
            elif hop.name in HOOKS:
                d["node"] = structure.node_id("hook", hop.name)
            steps.append(d)
    return {
        "disposition": t.disposition.value,
        "detail": t.detail,
        "socket": t.socket,
        "interface": t.interface,
        "branch": list(t.branch),
        "assumptions": list(t.assumptions),
        "steps": steps,
        "final_packet": t.final_packet.describe() if t.final_packet else None,
    }


def _rule_keys(traces: list[Trace]) -> list[tuple[str, str, int]]:
    keys: list[tuple[str, str, int]] = []
    for t in traces:
        for s in t.rules_hit():
            if s.table and s.chain and s.index:
                k = (s.table, s.chain, s.index)
                if k not in keys:
                    keys.append(k)
    return keys


def composer_result(analysis: Analysis, query: dict[str, str]) -> dict[str, Any]:
    """The composer's answer as data: the normalised packet, each trace's steps and verdict."""
    pod = _pod(analysis)
    c = parse_composition(query, analysis, pod)
    traces = compose(pod, c)
    link = _rule_link(analysis, Family.of(c.packet.src))
    return {
        "packet": c.packet.describe(),
        "family": str(Family.of(c.packet.src)),
        "entry": c.entry,
        "entry_label": ENTRIES[c.entry] + (f" ({c.iface})" if c.entry == "iface" else f" (uid {c.uid}, gid {c.gid})"),
        "params": c.params,
        "query": urlencode(c.params),
        "traces": [_trace_view(t, link) for t in traces],
        "rules_hit": [{"table": t, "chain": ch, "index": i} for t, ch, i in _rule_keys(traces)],
        "notes": list(pod.socket_notes),
    }


@login_first
@require_GET
@simulation_throttled
def compose_page(request: HttpRequest, slug: str) -> HttpResponse:
    analysis = access.readable_analysis(request, slug)
    query: dict[str, str] = {k: str(v) for k, v in request.GET.items() if k not in ("format", "fragment")}
    context: dict[str, Any] = {
        **_base_context(request, analysis, "compose"),
        "entries": ENTRIES,
        "protocols": PROTOCOLS,
    }
    values = {**composer_defaults(analysis), **query}
    context["values"] = values
    context["interfaces"] = [i.name for i in _pod(analysis).snapshot.interfaces]
    try:
        result = composer_result(analysis, query)
    except BadInput as exc:
        if _wants_fragment(request):
            return render(request, "explorer/_compose_result.html", {"errors": exc.errors}, status=400)
        return _bad_input_response(request, exc, "explorer/compose.html", context)
    if _wants_json(request):
        return JsonResponse(result)
    context["result"] = result
    if _wants_fragment(request):
        return render(request, "explorer/_compose_result.html", context)
    family = FAMILIES[result["family"]]
    hits = structure.hits_from_stories(_stories(analysis)) if family == _pod_family(analysis) else {}
    # "only what this packet hit": its chains and the Envoy listener it reached, not the whole pod
    focus = None
    if request.GET.get("only") == "1":
        listeners = {
            m.group(1)
            for t in result["traces"]
            if (m := re.match(r"envoy listener (\S+?):", str(t.get("socket") or "")))
        }
        focus = structure.Focus(
            frozenset((r["table"], r["chain"]) for r in result["rules_hit"]), frozenset(listeners), frozenset()
        )
    context["only"] = focus is not None
    # the graph is drawn once per page; explorer.js highlights the current step's chain and rule in it
    context["svg"], context["diagram_error"] = _structure_svg(analysis, family, hits, focus=focus)
    return render(request, "explorer/compose.html", context)
