"""The visual rule explorer of an analysis (issue 6): what its views share, and the structure view.

The rule table is meshviz/web/explorer_rules.py, the packet composer explorer_composer.py, what-if and the diff of
two analyses explorer_whatif.py, and their JSON explorer_api.py.

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

import ipaddress
import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from meshviz.analyses import access, diagrams, services
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.engine.api import (
    DiagramError,
    Evidence,
    Family,
    SimulatedPod,
    nft_view,
    simulated_pod,
    structure,
)
from meshviz.engine.api import render as render_module
from meshviz.web import nft_parsed, parsed, ratelimit

logger = logging.getLogger(__name__)

#: query parameter values of ?family=
FAMILIES = {"ipv4": Family.IPV4, "ipv6": Family.IPV6}
#: query parameter values of ?backend=: iptables' rules or native nftables (`nft list ruleset`)
BACKENDS = ("iptables", "nft")
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


def _backend(request: HttpRequest, analysis: Analysis) -> str:
    """?backend=iptables|nft; without it nft when the analysis has nft rules and no iptables rules; anything else is
    a 404 (the backend names a page)."""
    name = request.GET.get("backend") or ""
    if not name:
        return "nft" if nft_parsed.has_nftables(analysis) and not nft_parsed.has_iptables(analysis) else "iptables"
    if name not in BACKENDS:
        raise Http404(f"unknown backend {name!r} (iptables or nft)")
    return name


def _backends(analysis: Analysis) -> list[str]:
    """The backends the analysis has rules for (the rule table's switch)."""
    out = ["iptables"] if nft_parsed.has_iptables(analysis) else []
    return [*out, "nft"] if nft_parsed.has_nftables(analysis) else out or ["iptables"]


def is_nft_table(table: str) -> bool:
    """An nft rule's table is "FAMILY NAME" (`inet istio-proxy-nat`), as nft trace steps name it; iptables' tables
    (raw, mangle, nat, filter, security) are one word."""
    return " " in table


def _connection_labels(analysis: Analysis) -> dict[int, str]:
    return {
        n: services.connection_label(s["connection"], str(analysis.pod_ip)) for n, s in enumerate(_stories(analysis), 1)
    }


def _families(analysis: Analysis) -> list[str]:
    return parsed.families(analysis)


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
            query = {"table": table, "chain": chain, **({"backend": "nft"} if is_nft_table(table) else {})}
            return reverse("explorer-rules", args=[analysis.slug]) + "?" + urlencode(query)
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
        if nft_parsed.has_nftables(analysis):  # nft rules are drawn too
            rules += nft_parsed.nftables(analysis).ruleset.rule_count()
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


#: User-defined chains listed under the overview (those a connection hit first); kube-proxy's 30,000 on a node are
#: counted and left to the rule table.
MAX_OVERVIEW_USER_CHAINS = 100


def _overview(analysis: Analysis, family: Family, hits: dict[Any, Any]) -> dict[str, Any]:
    """Hooks -> tables -> chains with their rule and hit counts, each linking to its chain in the rule table.

    Linear in the rules: every chain is found once through a dict, the hits counted once per chain, and at most
    MAX_OVERVIEW_USER_CHAINS user chains listed (a node's ruleset took 29 s and 4.3 MB here: a linear lookup per
    chain and one link per chain)."""
    rs = parsed.ruleset(analysis, family)
    if rs is None:
        return {"tables": [], "hooks": [], "user": [], "user_more": 0}
    tables = [t for _, order in structure.HOOK_TABLES for t in order]
    tables = [t for t in dict.fromkeys(tables) if any(x.name == t for x in rs.tables)]
    chains = {(t.name, c.name): c for t in rs.tables for c in t.chains}
    hit_rules: dict[tuple[str, str], int] = {}
    for key, value in hits.items():
        if value and len(key) == 3:
            hit_rules[(key[0], key[1])] = hit_rules.get((key[0], key[1]), 0) + 1
    rules_url = reverse("explorer-rules", args=[analysis.slug])

    def cell(table: str, chain: str) -> dict[str, Any] | None:
        c = chains.get((table, chain))
        if c is None:
            return None
        url = rules_url + "?" + urlencode({"table": table, "chain": chain})
        return {
            "table": table,
            "chain": chain,
            "rules": len(c.rules),
            "hit": hit_rules.get((table, chain), 0),
            "policy": c.policy,
            "url": url,
        }

    hooks = [
        {"hook": hook, "cells": [cell(t, hook) if t in order else None for t in tables]}
        for hook, order in structure.HOOK_TABLES
    ]
    user_keys = [(t, name) for (t, name), c in chains.items() if not c.builtin and c.rules]
    if len(user_keys) > MAX_OVERVIEW_USER_CHAINS:
        # too many to list: the chains a connection went through first, then the others in the ruleset's order
        user_keys.sort(key=lambda k: not hit_rules.get(k))
    user = [c for t, name in user_keys[:MAX_OVERVIEW_USER_CHAINS] if (c := cell(t, name)) is not None]
    return {"tables": tables, "hooks": hooks, "user": user, "user_more": len(user_keys) - len(user)}


def _nft_overview(analysis: Analysis, family: Family, hits: dict[Any, Any]) -> dict[str, Any] | None:
    """The nft tables, chains, sets and maps, and the hook order with iptables' tables interleaved (engine:
    nft_view.nft_structure); chains and rules link to the rule table.  None without nft evidence."""
    if not nft_parsed.has_nftables(analysis):
        return None
    view = nft_view.nft_structure(
        nft_parsed.nftables(analysis).ruleset, nft_parsed.iptables_tables(analysis), hits, family=family
    )
    rules = reverse("explorer-rules", args=[analysis.slug])
    for table in view["tables"]:
        table["url"] = rules + "?" + urlencode({"backend": "nft", "table": table["label"]})
        for chain in table["chains"]:
            chain["url"] = rules + "?" + urlencode({"backend": "nft", "table": table["label"], "chain": chain["name"]})
    for hook in view["hooks"]:
        for slot in hook["slots"]:
            if slot["kind"] == "nft":
                query = {"backend": "nft", "table": slot["table"], "chain": slot["chain"]}
            elif slot["kind"] == "iptables":
                query = {"table": slot["table"], "chain": hook["hook"]}
            else:
                continue
            slot["url"] = rules + "?" + urlencode(query)
    return view


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
    nft = _nft_overview(analysis, family, hits)
    if _wants_json(request):
        return JsonResponse({"family": family.value, "overview": _overview(analysis, family, hits), "nftables": nft})
    svg, error = _structure_svg(analysis, family, hits, focus=focus)
    context = {
        **_base_context(request, analysis, "structure"),
        "svg": svg,
        "diagram_error": error,
        "family": family.value,
        "families": _families(analysis),
        "connection": number,
        "overview": _overview(analysis, family, hits),
        "nft": nft,
        "connections": [
            {"number": n, "label": services.connection_label(s["connection"], str(analysis.pod_ip))}
            for n, s in enumerate(stories, 1)
            if s.get("connection")
        ],
    }
    return render(request, "explorer/structure.html", context)


__all__ = ["BadInput", "structure_page"]
