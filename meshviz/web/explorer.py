"""The visual rule explorer of an analysis (issue 6): structure view, rule table, packet composer,
what-if editing and the diff of two analyses.

Every view is reached through its URL alone (the state lives in the query string, see docs/explorer.md):

* ``/a/<slug>/structure/``                       hooks, tables and chains as a Graphviz graph with hit counts
* ``/a/<slug>/rules/``                           every rule, filtered by ``table``, ``chain``, ``target``, ``q``
* ``/a/<slug>/rules/<table>/<chain>/<n>``        one rule, its connections and the trace steps around it
* ``/a/<slug>/compose/``                         a packet (``src``, ``dst``, ...) traced through the pod
* ``/a/<slug>/whatif/?edits=<JSON>``             the analysis with edits applied, verdicts before and after
* ``/diff/<slug_a>/<slug_b>/``                   rules, Envoy and verdicts that changed between two analyses

Each view answers ``?format=json`` with its data and ``?fragment=1`` with the HTML of its changing part
(the composer's and the rule detail's panels), which explorer.js swaps in place.

Analyses are fetched only through meshviz.analyses.access (404 for what the user may not read).
Everything user-supplied reaches the templates as plain strings and is escaped by Django's autoescape;
only Graphviz's SVG is inserted unescaped, because the engine's renderer escapes every label it writes.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from meshviz.analyses import access, diagrams, services
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue
from meshviz.engine.api import (
    DEFAULT_POD_IFACE,
    DiagramError,
    Evidence,
    Family,
    Packet,
    Sender,
    SimulatedPod,
    Story,
    Trace,
    analysis_diff,
    safejson,
    simulated_pod,
    structure,
    trace,
    whatif,
)
from meshviz.engine.api import render as render_module
from meshviz.web import parsed, ratelimit

logger = logging.getLogger(__name__)

#: query parameter values of ?family=
FAMILIES = {"ipv4": Family.IPV4, "ipv6": Family.IPV6}
#: what a rule filter may test
FILTER_FIELDS = ("table", "chain", "target", "q")
#: composer entry points
ENTRIES = {
    "iface": "arrives on an interface",
    "local": "sent by a local process (uid/gid)",
    "envoy": "sent by Envoy (the sidecar's uid/gid)",
}
PROTOCOLS = ("tcp", "udp")
HOOKS = {hook for hook, _ in structure.HOOK_TABLES}
#: the largest ?edits= accepted (characters of JSON)
MAX_EDITS_CHARS = 64 * 1024
MAX_EDITS = 100


def simulation_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """What-if and the packet composer simulate in the web request: bounded by the engine's limits and throttled,
    anonymous visitors per address (MESHVIZ_WHATIF_ANON_RATE), users each (MESHVIZ_WHATIF_RATE); 429 beyond."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.GET or request.method == "POST":
            if request.user.is_authenticated:
                wait = ratelimit.hit("simulate-user", str(request.user.pk), settings.MESHVIZ_WHATIF_RATE)
            else:
                wait = ratelimit.hit(
                    "simulate-anon", ratelimit.client_address(request), settings.MESHVIZ_WHATIF_ANON_RATE
                )
            if wait is not None:
                message = f"too many simulations: try again in {wait} seconds"
                response: HttpResponse = JsonResponse({"errors": [_error("request", message)]}, status=429)
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------
# errors: 400 with {"errors": [{source, line, column, text, message}]}
# --------------------------------------------------------------------------


class BadInput(Exception):
    """Input a view cannot use; answered with 400 naming the field (and edit number / column)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e.get('source')}: {e.get('message')}" for e in errors))
        self.errors = errors


def _error(source: str, message: str, text: str = "", line: int = 0, column: int = 0) -> dict[str, Any]:
    return services.error(source, message, line=line, column=column, text=text)


def _wants_json(request: HttpRequest) -> bool:
    return request.GET.get("format") == "json"


def _wants_fragment(request: HttpRequest) -> bool:
    return request.GET.get("fragment") == "1"


def _bad_input_response(request: HttpRequest, exc: BadInput, template: str, context: dict[str, Any]) -> HttpResponse:
    if _wants_json(request) or request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"errors": exc.errors}, status=400)
    return render(request, template, {**context, "errors": exc.errors}, status=400)


# --------------------------------------------------------------------------
# the analysis as the engine sees it
# --------------------------------------------------------------------------


Pod = SimulatedPod


def pod_of(ev: Evidence) -> Pod:
    """The parsed evidence of one analysis with the sockets the story would assume (engine: simulated_pod)."""
    return simulated_pod(ev, services.DEFAULT_APP_PORT)


def _pod(analysis: Analysis) -> Pod:
    return parsed.pod(analysis)


def _stories(analysis: Analysis) -> list[dict[str, Any]]:
    return list((analysis.results or {}).get("stories") or [])


def _pod_family(analysis: Analysis) -> Family:
    return Family.IPV6 if ipaddress.ip_address(str(analysis.pod_ip)).version == 6 else Family.IPV4


def _family(request: HttpRequest, analysis: Analysis) -> Family:
    """?family=ipv4|ipv6, IPv4 when absent; anything else is a 404 (the family names a page)."""
    name = request.GET.get("family") or "ipv4"
    if name not in FAMILIES:
        raise Http404(f"unknown family {name!r} (ipv4 or ipv6)")
    return FAMILIES[name]


def _connection_labels(analysis: Analysis) -> dict[int, str]:
    return {
        n: services.connection_label(s["connection"], str(analysis.pod_ip)) for n, s in enumerate(_stories(analysis), 1)
    }


def _base_context(request: HttpRequest, analysis: Analysis, tab: str) -> dict[str, Any]:
    return {
        "analysis": analysis,
        "tab": tab,
        "pending": analysis.state in (Analysis.State.QUEUED, Analysis.State.RUNNING),
        "summary": (analysis.results or {}).get("summary", ""),
        "can_write": access.can_write(request.user, analysis),
    }


# --------------------------------------------------------------------------
# structure view
# --------------------------------------------------------------------------


def _rule_link(analysis: Analysis, family: Family) -> Callable[[str, str, int | None], str]:
    """URL of a chain (index None) or a rule on the rules page, for the structure graph's nodes."""
    suffix = "" if family == Family.IPV4 else "?family=ipv6"

    def link(table: str, chain: str, index: int | None = None) -> str:
        if index is None:
            return reverse("explorer-rules", args=[analysis.slug]) + "?" + urlencode({"table": table, "chain": chain})
        return reverse("explorer-rule", args=[analysis.slug, table, chain, index]) + suffix

    return link


def _node_link(analysis: Analysis, family: Family) -> Callable[[str], str]:
    """URL of a structure-graph node (structure.node_id): rules open their deep link, chains the filtered table."""
    rule_link = _rule_link(analysis, family)

    def link(nid: str) -> str:
        kind, parts = structure.parse_node_id(nid)
        if kind == "rule" and len(parts) == 3 and parts[2].isdigit():
            return rule_link(parts[0], parts[1], int(parts[2]))
        if kind == "chain" and len(parts) == 2:
            return rule_link(parts[0], parts[1], None)
        return f"#{nid}"

    return link


#: the least DOT one rule adds to the structure graph (its row's markup and text; about 1 KB in practice)
MIN_DOT_BYTES_PER_RULE = 64
#: rendered structure SVGs, by the DOT's content hash (like the flow diagrams)
STRUCTURE_CACHE_PREFIX = "meshviz:structure:"


def _structure_dot(
    analysis: Analysis,
    family: Family,
    hits: dict[Any, Any] | None,
    highlight: Iterable[Any] = (),
    focus: structure.Focus | None = None,
) -> str:
    pod = _pod(analysis)
    return structure.structure_dot(
        pod.snapshot,
        pod.envoy,
        hits=hits,
        highlight=tuple(highlight),
        link=_node_link(analysis, family),
        family=family,
        focus=focus,
    )


def _structure_svg(
    analysis: Analysis,
    family: Family,
    hits: dict[Any, Any] | None,
    highlight: Iterable[Any] = (),
    focus: structure.Focus | None = None,
) -> tuple[str | None, str]:
    """(inline SVG or None, error text) of the structure graph of `family`'s ruleset.

    A whole ruleset whose DOT would surely be refused (every rule takes at least MIN_DOT_BYTES_PER_RULE of it, over
    the renderer's MAX_DOT_BYTES) is not built at all: a node's 80,000 kube-proxy rules took 30 s to build 60 MB of
    DOT that was then refused.  Only what a connection hit (`focus`) is drawn whatever the ruleset's size."""
    if focus is None:
        rs = parsed.ruleset(analysis, family)
        rules = sum(len(c.rules) for t in rs.tables for c in t.chains) if rs is not None else 0
        if rules * MIN_DOT_BYTES_PER_RULE > render_module.MAX_DOT_BYTES:
            return None, (
                f"the {family.value} ruleset has {rules:,} rules: too many to draw as one graph (more than the "
                f"{render_module.MAX_DOT_BYTES:,}-byte limit of DOT); the rule table lists them, filtered and paged, "
                "and the structure of only what a connection hit can be drawn"
            )
    dot = _structure_dot(analysis, family, hits, highlight, focus)
    key = STRUCTURE_CACHE_PREFIX + render_module.diagram_key(dot, "svg")
    svg = diagrams.cache_get(key)
    if not isinstance(svg, bytes):
        try:
            svg = structure.render_structure_svg(dot)
        except DiagramError as exc:
            logger.warning("analysis %s: structure diagram: %s", analysis.slug, exc)
            return None, str(exc)
        diagrams.cache_set(key, svg)
    return diagrams.inline_svg(svg), ""


def _overview(analysis: Analysis, family: Family, hits: dict[Any, Any]) -> dict[str, Any]:
    """Hooks -> tables -> chains with their rule and hit counts, each linking to its chain in the rule table."""
    rs = parsed.ruleset(analysis, family)
    if rs is None:
        return {"tables": [], "hooks": [], "user": []}
    tables = [t for _, order in structure.HOOK_TABLES for t in order]
    tables = [t for t in dict.fromkeys(tables) if any(x.name == t for x in rs.tables)]

    def cell(table: str, chain: str) -> dict[str, Any] | None:
        t = next((x for x in rs.tables if x.name == table), None)
        c = t.chain(chain) if t is not None else None
        if c is None:
            return None
        hit = sum(1 for i in range(1, len(c.rules) + 1) if hits.get((table, chain, i)))
        url = reverse("explorer-rules", args=[analysis.slug]) + "?" + urlencode({"table": table, "chain": chain})
        return {"table": table, "chain": chain, "rules": len(c.rules), "hit": hit, "policy": c.policy, "url": url}

    hooks = [
        {"hook": hook, "cells": [cell(t, hook) if t in order else None for t in tables]}
        for hook, order in structure.HOOK_TABLES
    ]
    user = [
        c
        for t in rs.tables
        for ch in t.chains
        if not ch.builtin and (c := cell(t.name, ch.name)) is not None and c["rules"]
    ]
    return {"tables": tables, "hooks": hooks, "user": user}


@login_first
@require_GET
def structure_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The structure graph; `?connection=N`: only what connection N went through; `?download=svg|png`: the file."""
    analysis = access.readable_analysis(request, slug)
    family = _family(request, analysis)
    stories = _stories(analysis)
    hits = structure.hits_from_stories(stories) if family == _pod_family(analysis) else {}
    raw = request.GET.get("connection", "")
    number = int(raw) if raw.isdigit() and 1 <= int(raw) <= len(stories) else None
    focus = structure.focus_of(stories[number - 1]) if number else None
    download = request.GET.get("download", "")
    if download in ("svg", "png"):
        try:
            data = render_module.render(
                _structure_dot(analysis, family, hits, focus=focus),
                download,
                timeout=render_module.DEFAULT_TIMEOUT * 2,
                max_bytes=render_module.DEFAULT_MAX_BYTES * 4,
            )
        except DiagramError as exc:
            return HttpResponse(f"the diagram cannot be rendered: {exc}", status=503, content_type="text/plain")
        response = HttpResponse(data, content_type=diagrams.FORMATS[download])
        name = f"meshviz-{analysis.slug}-structure{f'-{number}' if number else ''}.{download}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    svg, error = _structure_svg(analysis, family, hits, focus=focus)
    context = {
        **_base_context(request, analysis, "structure"),
        "svg": svg,
        "diagram_error": error,
        "family": family.value,
        "families": _families(analysis),
        "connection": number,
        "overview": _overview(analysis, family, hits),
        "connections": [
            {"number": n, "label": services.connection_label(s["connection"], str(analysis.pod_ip))}
            for n, s in enumerate(stories, 1)
            if s.get("connection")
        ],
    }
    return render(request, "explorer/structure.html", context)


# --------------------------------------------------------------------------
# rule table
# --------------------------------------------------------------------------


def _hits(analysis: Analysis, family: Family) -> dict[tuple[str, str, int], list[int]]:
    return structure.hits_from_stories(_stories(analysis)) if family == _pod_family(analysis) else {}


def _with_hits(row: structure.RuleRow, hits: dict[tuple[str, str, int], list[int]]) -> structure.RuleRow:
    by = hits.get((row.table, row.chain, row.index))
    return replace(row, hits=tuple(by)) if by else row


def _filters(request: HttpRequest) -> dict[str, str]:
    return {f: request.GET.get(f, "").strip() for f in FILTER_FIELDS}


def _row_dict(row: structure.RuleRow, link: str) -> dict[str, Any]:
    d = row.to_dict()
    d["url"] = link
    d["node_id"] = structure.node_id("rule", row.table, row.chain, row.index)
    return d


def _families(analysis: Analysis) -> list[str]:
    return parsed.families(analysis)


#: rule-table rows per page (?per_page= up to MAX_PER_PAGE)
PER_PAGE = 200
MAX_PER_PAGE = 1000
#: the chain filter's drop-down lists every chain only up to this many (the chains hit and the selected one always)
MAX_CHAIN_CHOICES = 300


def _positive(request: HttpRequest, name: str, default: int, most: int) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BadInput([_error(name, f"{name} must be a whole number from 1, not {raw!r}", raw)])
    return min(int(raw), most)


def _matching(cached: parsed.Rows, f: dict[str, str]) -> list[int]:
    """Indexes of the rows the filters keep (the text filter searches the cached lower-cased haystacks)."""
    needle = f["q"].lower()
    target = f["target"].lower()
    if not (needle or target or f["table"] or f["chain"]):
        return list(range(len(cached.rows)))
    out = []
    for i, (r, hay) in enumerate(zip(cached.rows, cached.haystacks, strict=True)):
        if f["table"] and r.table != f["table"]:
            continue
        if f["chain"] and r.chain != f["chain"]:
            continue
        if target and (r.target or "").lower() != target:
            continue
        if needle and needle not in hay:
            continue
        out.append(i)
    return out


def _rules_context(
    request: HttpRequest, analysis: Analysis, selected: tuple[str, str, int] | None = None
) -> dict[str, Any]:
    """One page of the rule table: filtered and paged on the server (?page=, ?per_page=), rows from the cache."""
    family = _family(request, analysis)
    cached = parsed.rows(analysis, family)
    hits = _hits(analysis, family)
    filters = _filters(request)
    link = _rule_link(analysis, family)
    matching = _matching(cached, filters)
    per_page = _positive(request, "per_page", PER_PAGE, MAX_PER_PAGE)
    pages = max(1, -(-len(matching) // per_page))
    selected_at: int | None = None
    if selected is not None:
        selected_at = cached.position.get(selected)
        if selected_at is None:
            raise Http404("no such rule")
    default_page = 1
    if selected_at is not None and "page" not in request.GET:
        # a deep link opens the page its rule is on
        pos = bisect.bisect_left(matching, selected_at)  # `matching` is in row order
        default_page = pos // per_page + 1 if pos < len(matching) and matching[pos] == selected_at else 1
    page = min(_positive(request, "page", default_page, 10**9), pages)
    window = matching[(page - 1) * per_page : page * per_page]
    shown = [_row_dict(_with_hits(cached.rows[i], hits), link(*_key(cached.rows[i]))) for i in window]
    if selected_at is not None and selected_at not in window:
        row = cached.rows[selected_at]
        shown.append(
            _row_dict(_with_hits(row, hits), link(*_key(row)))
        )  # a deep link shows its rule even when filtered out
    chains = (
        list(cached.chains_by_table.get(filters["table"], ()))
        if filters["table"]
        else sorted({c for names in cached.chains_by_table.values() for c in names})
    )
    if len(chains) > MAX_CHAIN_CHOICES:
        keep = {k[1] for k in hits} | ({filters["chain"]} if filters["chain"] else set())
        chains = sorted(c for c in chains if c in keep)
    targets = list(cached.targets)
    if len(targets) > MAX_CHAIN_CHOICES:  # jumps to thousands of chains: the targets that are not chains
        all_chains = {c for names in cached.chains_by_table.values() for c in names}
        targets = [t for t in targets if t not in all_chains or t == filters["target"]]
    query = {k: v for k, v in request.GET.items() if k in (*FILTER_FIELDS, "family", "per_page") and v}
    return {
        **_base_context(request, analysis, "rules"),
        "family": family.value,
        "families": _families(analysis),
        "filters": filters,
        "rows": shown,
        "total": len(cached.rows),
        "matched": len(matching),
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "first": (page - 1) * per_page + 1 if window else 0,
        "last": (page - 1) * per_page + len(window),
        "prev_url": "?" + urlencode({**query, "page": page - 1}) if page > 1 else "",
        "next_url": "?" + urlencode({**query, "page": page + 1}) if page < pages else "",
        "tables": list(cached.tables),
        "chains": chains,
        "targets": targets,
    }


def _key(row: structure.RuleRow) -> tuple[str, str, int]:
    return (row.table, row.chain, row.index)


def _rule_detail(analysis: Analysis, table: str, chain: str, index: int, family: Family) -> dict[str, Any]:
    """The rule, its explanation, the connections that hit it and the trace steps around it."""
    hits = _hits(analysis, family)
    cached = parsed.rows(analysis, family)
    at = cached.position.get((table, chain, index))
    if at is None:
        raise Http404("no such rule")
    row = _with_hits(cached.rows[at], hits)
    stories = _stories(analysis) if family == _pod_family(analysis) else []
    labels = _connection_labels(analysis)
    steps = structure.steps_for_rule(stories, table, chain, index)
    return {
        "rule": _row_dict(row, _rule_link(analysis, family)(table, chain, index)),
        "connections": [{"number": n, "label": labels.get(n, f"connection {n}")} for n in row.hits],
        "steps": [{**item, "label": labels.get(item["number"], "")} for item in steps],
    }


@login_first
@require_GET
def rules_page(request: HttpRequest, slug: str) -> HttpResponse:
    analysis = access.readable_analysis(request, slug)
    try:
        context = _rules_context(request, analysis)
    except BadInput as exc:
        return _bad_input_response(request, exc, "explorer/rules.html", _base_context(request, analysis, "rules"))
    if _wants_json(request):
        return JsonResponse(rules_json(context))
    return render(request, "explorer/rules.html", context)


def rules_json(context: dict[str, Any]) -> dict[str, Any]:
    """The rule table's JSON: one page of the filtered rules and where it is."""
    return {
        "family": context["family"],
        "total": context["total"],
        "matched": context["matched"],
        "page": context["page"],
        "pages": context["pages"],
        "per_page": context["per_page"],
        "rules": context["rows"],
    }


@login_first
@require_GET
def rule_page(request: HttpRequest, slug: str, table: str, chain: str, index: int) -> HttpResponse:
    analysis = access.readable_analysis(request, slug)
    family = _family(request, analysis)
    detail = _rule_detail(analysis, table, chain, index, family)
    if _wants_json(request):
        return JsonResponse(detail)
    if _wants_fragment(request):
        return render(request, "explorer/_rule_detail.html", {"analysis": analysis, **detail})
    try:
        rules_context = _rules_context(request, analysis, (table, chain, index))
    except BadInput as exc:
        return _bad_input_response(request, exc, "explorer/rules.html", _base_context(request, analysis, "rules"))
    context = {**rules_context, **detail, "selected": (table, chain, index)}
    return render(request, "explorer/rules.html", context)


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


# --------------------------------------------------------------------------
# what-if
# --------------------------------------------------------------------------


def parse_edits(text: str) -> list[whatif.Edit]:
    """`?edits=` (a JSON list of edits, the engine's Edit.to_dict shape); BadInput naming edit and column."""
    if not text.strip():
        return []
    if len(text) > MAX_EDITS_CHARS:
        raise BadInput([_error("edits", f"the edits are longer than {MAX_EDITS_CHARS} characters")])
    try:
        data = safejson.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            [
                _error(
                    "edits",
                    f"the edits are not JSON: {exc.msg}",
                    text[max(0, exc.pos - 20) : exc.pos + 20],
                    1,
                    exc.colno,
                )
            ]
        ) from exc
    if not isinstance(data, list):
        raise BadInput([_error("edits", "the edits must be a JSON list of edits")])
    if len(data) > MAX_EDITS:
        raise BadInput([_error("edits", f"at most {MAX_EDITS} edits at a time ({len(data)} given)")])
    edits: list[whatif.Edit] = []
    errors: list[dict[str, Any]] = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            errors.append(_error(f"edit {number}", "an edit must be a JSON object", json.dumps(item)[:200]))
            continue
        try:
            edits.append(whatif.Edit.from_dict(item))
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(_error(f"edit {number}", f"not a valid edit: {exc}", json.dumps(item)[:200]))
    if errors:
        raise BadInput(errors)
    return edits


def _edits_text(edits: list[whatif.Edit]) -> str:
    return json.dumps([e.to_dict() for e in edits], separators=(",", ":"))


_TEXT_LABELS = {
    "iptables": "iptables rules",
    "ip_rule": "ip rules",
    "ip_route": "routes",
    "sysctl": "sysctls",
    "envoy": "Envoy config dump",
}


def edit_sentence(e: whatif.Edit) -> str:
    """One what-if edit as words, for the origin line of a saved copy."""
    where = f"{e.table}/{e.chain}"
    if e.op == "insert":
        return f"inserted at {where} #{e.index}: {e.rule}"
    if e.op == "replace":
        return f"replaced {where} #{e.index} with: {e.rule}"
    if e.op == "delete":
        return f"deleted {where} #{e.index}"
    if e.op == "move":
        return f"moved {where} #{e.index} to #{e.to_index}"
    label = _TEXT_LABELS.get(str(e.kind), str(e.kind))
    first = next((ln.strip() for ln in (e.text or "").splitlines() if ln.strip()), "")
    if e.op == "set_text":
        return f"replaced the {label}" + (f" (starting {first})" if first else "")
    if e.op == "append_text":
        n = len([ln for ln in (e.text or "").splitlines() if ln.strip()])
        return f"added to the {label}: {first}" + (f" and {n - 1} more line{'s' if n > 2 else ''}" if n > 1 else "")
    if e.op == "sysctl":
        return f"set {e.key} to {e.value}"
    if e.op == "envoy_bind":
        on = f"cluster {e.cluster}" if e.cluster else "the inbound clusters"
        return (
            f"bound Envoy's upstream connections on {on} to {e.address}"
            if e.address
            else f"removed the upstream bind on {on}"
        )
    on = e.listener or "virtualInbound"
    return f"removed original_src from {on}" if e.mark is None else f"original_src with mark {e.mark} on {on}"


def edits_sentences(edits: list[whatif.Edit]) -> str:
    return "; ".join(edit_sentence(e) for e in edits)


def whatif_result(analysis: Analysis, edits: list[whatif.Edit]) -> dict[str, Any]:
    """Apply the edits to a scratch copy and re-run every connection; BadInput when an edit does not apply."""
    ev = services.evidence_of(analysis)
    stories = _stories(analysis)
    # the original's stored stories spare re-tracing it, when they answer the current inputs and engine
    before = None
    if analysis.results_are_current() and len(stories) == len(analysis.connections):
        before = [Story.from_dict(s) for s in stories]
    result = slim_whatif(whatif.whatif(ev, list(analysis.connections), edits, before=before).to_dict())
    if result.get("errors"):
        raise BadInput(list(result["errors"]))
    return result


def slim_whatif(result: dict[str, Any]) -> dict[str, Any]:
    """A what-if answer carries the change and the verdicts, not the whole edited evidence (12 MB on a node-sized
    pod): the edits, what they changed, the patch, the verdict diff and each connection's new verdict; the edited
    evidence is the original plus `patch` (and "save as a new analysis" re-applies the edits on the server)."""
    out = {k: v for k, v in result.items() if k not in ("evidence", "stories")}
    out["verdicts"] = [
        {
            "connection": s.get("connection"),
            "verdict": s.get("verdict"),
            "summary": s.get("summary"),
            "findings": s.get("findings") or [],
        }
        for s in result.get("stories") or []
    ]
    return out


#: the what-if page's "add an edit" form fields (the engine's Edit fields)
EDIT_FORM_FIELDS = (
    "op",
    "family",
    "table",
    "chain",
    "index",
    "to_index",
    "rule",
    "kind",
    "text",
    "key",
    "value",
    "address",
    "cluster",
    "listener",
    "mark",
)


#: the form fields each operation uses (the others are ignored, so a form without JavaScript works too)
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "insert": ("family", "table", "chain", "index", "rule"),
    "replace": ("family", "table", "chain", "index", "rule"),
    "delete": ("family", "table", "chain", "index"),
    "move": ("family", "table", "chain", "index", "to_index"),
    "set_text": ("kind", "text"),
    "append_text": ("kind", "text"),
    "sysctl": ("key", "value"),
    "envoy_bind": ("address", "cluster"),
    "envoy_original_src": ("listener", "mark"),
}


def _edit_from_form(query: Any) -> dict[str, Any]:
    """The edit described by the form's fields (empty fields left out; `mark` "none" removes original_src)."""
    d: dict[str, Any] = {}
    op = str(query.get("op", "")).strip()
    wanted = ("op", *OP_FIELDS.get(op, EDIT_FORM_FIELDS))
    for f in wanted:
        v = str(query.get(f, ""))
        if f not in ("rule", "text"):
            v = v.strip()
        if v != "" and v.strip() != "":
            d[f] = v
    if d.get("op") == "envoy_original_src" and str(d.get("mark", "")).lower() == "none":
        d["mark"] = None
    return d


def _whatif_url(analysis: Analysis, edits: list[dict[str, Any]]) -> str:
    base = reverse("explorer-whatif", args=[analysis.slug])
    if not edits:
        return base
    return base + "?" + urlencode({"edits": json.dumps(edits, separators=(",", ":"))})


@login_first
@require_GET
@simulation_throttled
def whatif_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The scratch copy lives in `?edits=` (a JSON list); the add-an-edit form appends one and redirects there."""
    analysis = access.readable_analysis(request, slug)
    draft = _edit_from_form(request.GET)
    context: dict[str, Any] = {
        **_base_context(request, analysis, "whatif"),
        "edits_text": request.GET.get("edits", ""),
        "draft": draft,
        "ops": whatif.OPS,
        "text_kinds": whatif.TEXT_KINDS,
        "edits": [],
    }
    try:
        edits = parse_edits(request.GET.get("edits", ""))
        dicts = [e.to_dict() for e in edits]
        if request.GET.get("add"):
            try:
                new = whatif.Edit.from_dict(draft)
            except ValueError as exc:
                raise BadInput(
                    [_error(f"edit {len(edits) + 1}", f"not a valid edit: {exc}", json.dumps(draft))]
                ) from exc
            return redirect(_whatif_url(analysis, [*dicts, new.to_dict()]))
        context["edits"] = [
            {
                "number": n,
                "edit": d,
                "describe": e.describe(),
                "remove_url": _whatif_url(analysis, dicts[: n - 1] + dicts[n:]),
            }
            for n, (e, d) in enumerate(zip(edits, dicts, strict=True), 1)
        ]
        context["edits_text"] = _edits_text(edits) if edits else ""
        result = whatif_result(analysis, edits) if edits else None
    except BadInput as exc:
        return _bad_input_response(request, exc, "explorer/whatif.html", context)
    if _wants_json(request):
        return JsonResponse(result or {"ok": True, "errors": [], "edits": [], "diff": [], "patch": ""})
    context["result"] = result
    if edits:
        context["patch_url"] = (
            reverse("explorer-whatif-patch", args=[analysis.slug]) + "?" + urlencode({"edits": context["edits_text"]})
        )
    return render(request, "explorer/whatif.html", context)


@login_first
@require_GET
@simulation_throttled
def whatif_patch(request: HttpRequest, slug: str) -> HttpResponse:
    analysis = access.readable_analysis(request, slug)
    try:
        result = whatif_result(analysis, parse_edits(request.GET.get("edits", "")))
    except BadInput as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    response = HttpResponse(str(result.get("patch", "")), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="meshviz-whatif-{analysis.slug[:8]}.patch"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
@simulation_throttled
def whatif_save(request: HttpRequest, slug: str) -> HttpResponse:
    """Save the scratch copy as a new analysis (owned by the user, derived from this one) and open it."""
    analysis = access.readable_analysis(request, slug)
    try:
        edits = parse_edits(request.POST.get("edits", ""))
        if not edits:
            raise BadInput([_error("edits", "there are no edits to save")])
        applied = whatif.apply_edits(services.evidence_of(analysis), edits)
        if applied.errors:
            raise BadInput([e.to_dict() for e in applied.errors])
    except BadInput as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    ev = applied.evidence
    copy = services.create_analysis(
        iptables=ev.iptables,
        ip_rule=ev.ip_rule or "",
        ip_route=ev.ip_route or "",
        sysctl=ev.sysctl or "",
        envoy_config_dump=ev.envoy or "",
        ip6tables=ev.ip6tables or "",
        ip6_rule=ev.ip6_rule or "",
        ip6_route=ev.ip6_route or "",
        addr=ev.addr or "",
        nftables=ev.nftables or "",
        pod_ip=str(analysis.pod_ip),
        pod_name=analysis.pod_name,
        namespace=analysis.namespace,
        proxy_uid=analysis.proxy_uid,
        proxy_gid=analysis.proxy_gid,
        labels=dict(analysis.labels or {}),
        app_ports=[int(p) for p in analysis.app_ports],
        connections=list(analysis.connections),
        owner=access.owner_for(request),
        origin=Analysis.Origin.WHATIF,
        origin_notes=[f"a what-if copy of {analysis.permalink_path}: {edits_sentences(edits)}"],
        derived_from=analysis,
    )
    enqueue(copy)
    return redirect(copy.permalink_path)


# --------------------------------------------------------------------------
# diff of two analyses
# --------------------------------------------------------------------------


@login_first
@require_GET
def diff_page(request: HttpRequest, slug_a: str, slug_b: str) -> HttpResponse:
    a = access.readable_analysis(request, slug_a)
    b = access.readable_analysis(request, slug_b)
    result = analysis_diff.diff_evidence(
        services.evidence_of(a), services.evidence_of(b), _stories(a), _stories(b)
    ).to_dict()
    if _wants_json(request):
        return JsonResponse(result)
    return render(request, "explorer/diff.html", {"a": a, "b": b, "diff": result})


@login_first
@require_GET
def diff_pick(request: HttpRequest, slug: str) -> HttpResponse:
    """The explorer's "diff against" form: `other` is a slug or a permalink."""
    analysis = access.readable_analysis(request, slug)
    other = request.GET.get("other", "").strip().rstrip("/").rsplit("/", 1)[-1]
    if not other:
        return render(
            request,
            "explorer/diff_pick.html",
            {**_base_context(request, analysis, "diff"), "mine": _diff_candidates(request, analysis)},
        )
    picked = access.readable_analysis(request, other)
    # the older analysis is "before": diffing a what-if copy against its original shows the fix as added lines
    older, newer = (picked, analysis) if picked.created <= analysis.created else (analysis, picked)
    return redirect("explorer-diff", slug_a=older.slug, slug_b=newer.slug)


def _diff_candidates(request: HttpRequest, analysis: Analysis) -> list[Analysis]:
    """The user's other analyses (their own and their teams'), newest first, to diff against."""
    return list(access.member_of_analysis(request.user).exclude(pk=analysis.pk)[:20])


__all__ = [
    "BadInput",
    "compose_page",
    "diff_page",
    "diff_pick",
    "rule_page",
    "rules_page",
    "structure_page",
    "whatif_page",
    "whatif_patch",
    "whatif_save",
]
