"""The explorer's rule table: every rule with its explanation and the connections that hit it, filtered and paged on
the server, and one rule's page.
"""

from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from meshviz.analyses import access
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.engine.api import (
    Family,
    structure,
)
from meshviz.web import nft_parsed, parsed
from meshviz.web.explorer import (
    FILTER_FIELDS,
    BadInput,
    _backend,
    _backends,
    _bad_input_response,
    _base_context,
    _connection_labels,
    _error,
    _families,
    _family,
    _pod_family,
    _rule_link,
    _stories,
    _wants_fragment,
    _wants_json,
    is_nft_table,
)

# --------------------------------------------------------------------------
# rule table
# --------------------------------------------------------------------------


def _hits(analysis: Analysis, family: Family, backend: str = "iptables") -> dict[tuple[str, str, int], list[int]]:
    """The stories' hits: iptables' of the pod's family only (the traces are of that family); nft's always (an nft
    table is keyed "FAMILY NAME" and the traces only enter the tables of the pod's family)."""
    if backend == "nft":
        return {k: v for k, v in structure.hits_from_stories(_stories(analysis)).items() if is_nft_table(k[0])}
    return structure.hits_from_stories(_stories(analysis)) if family == _pod_family(analysis) else {}


def _cached_rows(analysis: Analysis, family: Family, backend: str) -> parsed.Rows:
    return nft_parsed.rows(analysis) if backend == "nft" else parsed.rows(analysis, family)


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
    backend = _backend(request, analysis)
    if selected is not None and is_nft_table(selected[0]):
        backend = "nft"
    cached = _cached_rows(analysis, family, backend)
    hits = _hits(analysis, family, backend)
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
    query = {k: v for k, v in request.GET.items() if k in (*FILTER_FIELDS, "family", "backend", "per_page") and v}
    return {
        **_base_context(request, analysis, "rules"),
        "family": family.value,
        "families": _families(analysis) if backend == "iptables" else [],
        "backend": backend,
        "backends": _backends(analysis),
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
    """The rule, its explanation, the connections that hit it and the trace steps around it.  A table "FAMILY NAME"
    (`inet istio-proxy-nat`) is an nft table: the rule is an nft rule."""
    backend = "nft" if is_nft_table(table) else "iptables"
    if backend == "nft" and not nft_parsed.has_nftables(analysis):
        raise Http404("no such rule")
    hits = _hits(analysis, family, backend)
    cached = _cached_rows(analysis, family, backend)
    at = cached.position.get((table, chain, index))
    if at is None:
        raise Http404("no such rule")
    row = _with_hits(cached.rows[at], hits)
    stories = _stories(analysis) if backend == "nft" or family == _pod_family(analysis) else []
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
        "backend": context["backend"],
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
