"""The explorer's what-if (edits to the evidence, re-traced, the verdicts before and after, saved as a new analysis)
and the diff of two analyses.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from meshviz.analyses import access, services
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue
from meshviz.engine.api import (
    Story,
    analysis_diff,
    safejson,
    whatif,
)
from meshviz.web.explorer import (
    MAX_EDITS,
    MAX_EDITS_CHARS,
    BadInput,
    _bad_input_response,
    _base_context,
    _error,
    _stories,
    _wants_json,
    simulation_throttled,
)

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
    "nftables": "nft ruleset",
}


def edit_sentence(e: whatif.Edit) -> str:
    """One what-if edit as words, for the origin line of a saved copy."""
    where = f"{e.table}/{e.chain}"
    if e.backend == "nft" or e.op == "policy":
        where = f"nft {e.family + ' ' if e.family and ' ' not in (e.table or '') else ''}{where}"
    if e.op == "policy":
        return f"set the policy of {where} to {e.value}"
    if e.op in ("add_element", "delete_element"):
        verb = "added" if e.op == "add_element" else "deleted"
        return f"{verb} {e.element} {'to' if verb == 'added' else 'from'} nft {e.table} @{e.set}"
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


#: the what-if page's "add an edit" form fields: the engine's Edit fields and the policy drop-down (the edit's value)
EDIT_FORM_FIELDS = (*whatif.EDIT_FIELDS, "policy")


#: the form fields each operation uses (the others are ignored, so a form without JavaScript works too)
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "insert": ("backend", "family", "table", "chain", "index", "rule"),
    "replace": ("backend", "family", "table", "chain", "index", "rule"),
    "delete": ("backend", "family", "table", "chain", "index"),
    "move": ("backend", "family", "table", "chain", "index", "to_index"),
    "policy": ("family", "table", "chain", "policy"),
    "add_element": ("family", "table", "set", "element"),
    "delete_element": ("family", "table", "set", "element"),
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
    if "policy" in d:  # the form's policy drop-down is the edit's value
        d["value"] = d.pop("policy")
    if d.get("backend") == "iptables":
        d.pop("backend")  # the default
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
        "backends": whatif.BACKENDS,
        "edit_families": ("ipv4", "ipv6", "ip", "ip6", "inet"),
        "policies": ("accept", "drop"),
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
