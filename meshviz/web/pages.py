"""Pages around an analysis: the permalink page, its diagrams and fix artifacts, and the new-analysis form.

Everything user-supplied reaches the templates as plain strings and is escaped by Django's autoescape;
only Graphviz's SVG is inserted unescaped, because meshviz.engine.render.dot escapes every label it writes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from meshviz.accounts.models import Team
from meshviz.analyses import access, chat, diagrams, examples, progress, services
from meshviz.analyses.access import login_first
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue
from meshviz.engine.api import DiagramError, Family, rule_text, structure

from . import parsed, ratelimit
from .forms import NewAnalysisForm, error_summary

logger = logging.getLogger(__name__)

#: seconds between reloads of a queued or running analysis
REFRESH_SECONDS = 2
#: file name extension of a downloaded fix artifact, by kind
ARTIFACT_EXT = {
    "kubectl-patch": "sh",
    "envoyfilter": "yaml",
    "iptables": "sh",
    "iptables-restore": "rules",
    "nft": "sh",
    "nft-f": "nft",
    "ip": "sh",
    "sysctl": "conf",
}


# --------------------------------------------------------------------------
# the analysis page
# --------------------------------------------------------------------------


def _rule_hits(stories: list[dict[str, Any]]) -> dict[tuple[str, str, int], list[int]]:
    """(table, chain, 1-based index) -> the connection numbers whose traces matched that rule."""
    return structure.hits_from_stories(stories)


#: a ruleset with more rules than this (a node's kube-proxy rules) is summarised on the analysis page: only the
#: chains a connection hit are listed, each with at most RULES_PER_HIT_CHAIN rules (those hit first); the whole
#: table is the explorer's paged rule table
SUMMARISE_OVER_RULES = 2000
RULES_PER_HIT_CHAIN = 100


def _rules(analysis: Analysis, stories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod's rules grouped by family, table and chain; each rule with the connections that hit it.

    The parse comes from the parse-once cache (meshviz.web.parsed). Big rulesets are summarised (see
    SUMMARISE_OVER_RULES): each table then says how many chains and rules it leaves to the rule table."""
    pod_family = Family.IPV6 if ipaddress.ip_address(str(analysis.pod_ip)).version == 6 else Family.IPV4
    hits = _rule_hits(stories)
    out = []
    for rs in parsed.iptables(analysis).rulesets:
        traced = rs.family == pod_family
        summarise = sum(t.rule_count() for t in rs.tables) > SUMMARISE_OVER_RULES  # counted, not built
        tables = []
        for table in rs.tables:
            chains = []
            omitted_chains = omitted_rules = 0
            for chain in table.chains:
                hit_here = (
                    {i for (t, c, i) in hits if t == table.name and c == chain.name} if traced and hits else set()
                )
                if summarise and not hit_here:
                    omitted_chains += 1
                    omitted_rules += chain.rule_count()  # a node's 30,000 chains are not built to be counted
                    continue
                indexes = range(1, len(chain.rules) + 1)
                if summarise and len(chain.rules) > RULES_PER_HIT_CHAIN:
                    keep = sorted(hit_here)[:RULES_PER_HIT_CHAIN]
                    keep += [i for i in indexes if i not in hit_here][: RULES_PER_HIT_CHAIN - len(keep)]
                    indexes = sorted(keep)  # type: ignore[assignment]
                    omitted_rules += len(chain.rules) - len(keep)
                rules = []
                for index in indexes:
                    by = hits.get((table.name, chain.name, index), []) if traced else []
                    rules.append({"index": index, "text": rule_text(chain.rules[index - 1]), "hit_by": by})
                chains.append(
                    {
                        "name": chain.name,
                        "policy": chain.policy,
                        "rules": rules,
                        "hit": any(r["hit_by"] for r in rules),
                        "total_rules": len(chain.rules),
                    }
                )
            tables.append(
                {
                    "name": table.name,
                    "chains": chains,
                    "omitted_chains": omitted_chains,
                    "omitted_rules": omitted_rules,
                    "rules_url": reverse("explorer-rules", args=[analysis.slug])
                    + "?"
                    + urlencode({"table": table.name, **({"family": "ipv6"} if rs.family == Family.IPV6 else {})}),
                }
            )
        out.append({"family": str(rs.family), "tables": tables, "traced": traced, "summarised": summarise})
    return out


def _connections(analysis: Analysis, stories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for number, story in enumerate(stories, 1):
        findings = story.get("findings") or []
        view: dict[str, Any] = {
            "number": number,
            "label": services.connection_label(story["connection"], str(analysis.pod_ip)),
            "direction": story["direction"],
            "summary": story["summary"],
            "verdict": story["verdict"],
            "failure": story["verdict"].get("failure"),
            "causes": [f for f in findings if f.get("kind") == "cause"],
            "findings": [f for f in findings if f.get("kind") not in ("cause", "assumption")],
            "assumptions": [f for f in findings if f.get("kind") == "assumption"],
            "svg": None,
            "diagram_error": "",
        }
        try:
            svg, _ = diagrams.rendered(diagrams.story_dot(analysis, number), "svg")
            view["svg"] = diagrams.inline_svg(svg)
        except DiagramError as exc:
            logger.warning("analysis %s: diagram %d: %s", analysis.slug, number, exc)
            view["diagram_error"] = str(exc)
        out.append(view)
    return out


def _fix(fix: dict[str, Any] | None) -> dict[str, Any] | None:
    if not fix:
        return None
    keys = list(dict.fromkeys([*(fix.get("before") or {}), *(fix.get("after") or {})]))
    verdicts = [
        {"key": k, "before": (fix.get("before") or {}).get(k), "after": (fix.get("after") or {}).get(k)} for k in keys
    ]
    return {**fix, "verdict_rows": verdicts}


#: Parser warnings about evidence the engine reads but does not simulate: shown last, collapsed.
_NOT_MODELLED = ("not modelled", "not modeled", "ignored", "skipped", "unknown field", "not simulated", "kept as")


def warning_groups(warnings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Parser warnings in two groups: what may change the answer first, "present but not modelled" after."""
    groups: dict[str, list[dict[str, Any]]] = {"affects": [], "not_modelled": []}
    for w in warnings:
        msg = str(w.get("message", "")).lower()
        groups["not_modelled" if any(k in msg for k in _NOT_MODELLED) else "affects"].append(w)
    return groups


def _comparison_tables(comparison: dict[str, Any], modes: list[str]) -> list[dict[str, Any]]:
    """Each compared connection as rows of (label, value per mode, differs) in `modes` order."""
    tables = []
    for conn in comparison.get("connections") or []:
        rows = [
            {
                "label": row.get("label") or row.get("aspect") or "",
                "values": [row.get(m) for m in modes],
                "differs": bool(row.get("differs")),
            }
            for row in conn.get("rows") or []
        ]
        summaries = [(conn.get("summaries") or {}).get(m, "") for m in modes]
        tables.append({"connection": conn.get("connection") or {}, "rows": rows, "summaries": summaries})
    return tables


def _comparison_diagrams(analysis: Analysis, tables: list[dict[str, Any]]) -> None:
    """Each compared connection's REDIRECT vs TPROXY flow diagrams (inline SVG), or why there are none."""
    for number, table in enumerate(tables, 1):
        table["number"] = number
        table["svg"], table["diagram_error"] = None, ""
        try:
            svg, _ = diagrams.rendered(diagrams.compare_dot(analysis, number), "svg")
            table["svg"] = diagrams.inline_svg(svg)
        except (DiagramError, diagrams.NoSuchConnection) as exc:
            logger.warning("analysis %s: comparison diagram %d: %s", analysis.slug, number, exc)
            table["diagram_error"] = str(exc)


def _sharing(request: HttpRequest, analysis: Analysis) -> dict[str, Any]:
    user = request.user
    shared = list(analysis.teams.all())
    return {
        "can_write": access.can_write(user, analysis),
        "can_manage": access.can_manage(user, analysis),
        "shared_teams": shared,
        "my_teams": list(Team.objects.filter(members=user.pk)) if user.is_authenticated else [],
        "shared_team_ids": {t.pk for t in shared},
        # a public copy must not reveal the slug of a private original
        "derived_visible": analysis.derived_from is not None and access.can_read(user, analysis.derived_from),
    }


def _preview(request: HttpRequest, analysis: Analysis) -> dict[str, str]:
    card = chat.card(analysis)
    return {
        "title": card["title"],
        "description": card["description"],
        "url": request.build_absolute_uri(analysis.permalink_path),
        "image": request.build_absolute_uri(f"/a/{analysis.slug}/card.png"),
    }


@login_first
@require_GET
def analysis_page(request: HttpRequest, slug: str) -> HttpResponse:
    analysis = access.readable_analysis(request, slug)
    results = analysis.results or {}
    stories = results.get("stories") or []
    pending = analysis.state in (Analysis.State.QUEUED, Analysis.State.RUNNING)
    comparison = results.get("comparison") or {}
    modes = sorted(comparison.get("modes") or [], key=lambda m: 0 if m == "REDIRECT" else 1)
    tables = _comparison_tables(comparison, modes)
    _comparison_diagrams(analysis, tables)
    context = {
        "analysis": analysis,
        "pending": pending,
        "refresh_seconds": REFRESH_SECONDS,
        "has_results": bool(results),
        "summary": results.get("summary", ""),
        "connections": _connections(analysis, stories),
        "comparison": comparison,
        "compare_modes": modes,
        "comparison_tables": tables,
        "fix": _fix(results.get("fix")),
        "warning_groups": warning_groups(analysis.parse_warnings or []),
        "rulesets": _rules(analysis, stories) if analysis.iptables else [],
        "stale": bool(results) and not analysis.results_are_current() and not pending,
        # link previews (Open Graph, Twitter cards) only for public permalinks: a private one reveals nothing
        "preview": _preview(request, analysis) if analysis.public and results else None,
        "progress": progress.of(analysis.pk) if pending else None,
        **_sharing(request, analysis),
    }
    return render(request, "web/analysis.html", context)


@login_required
@require_POST
def share_analysis(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner shares the analysis with some of their teams and/or makes its permalink public."""
    analysis = access.managed_analysis(request, slug)
    ids = {int(i) for i in request.POST.getlist("teams") if i.isdigit()}
    teams = list(Team.objects.filter(pk__in=ids, members=request.user.pk))
    services.set_sharing(analysis, public=request.POST.get("public") == "on", teams=teams, actor=request.user)
    messages.success(request, "Sharing updated.")
    return redirect(analysis.permalink_path + "#sharing")


@login_required
@require_POST
def delete_analysis(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner deletes the analysis (evidence and results); recorded in their audit log."""
    analysis = access.managed_analysis(request, slug)
    services.delete_analysis(analysis, actor=request.user)
    messages.success(request, "The analysis was deleted.")
    return redirect("home")


@login_required
@require_POST
def rerun_analysis(request: HttpRequest, slug: str) -> HttpResponse:
    """Re-run on demand with the current engine; the old results stay on the page until the new ones exist."""
    analysis = services.queue_rerun(access.writable_analysis(request, slug))
    enqueue(analysis, force=True)
    return redirect(analysis.permalink_path)


@login_first
@require_GET
def analysis_diagram(request: HttpRequest, slug: str, number: int, fmt: str) -> HttpResponse:
    try:
        return diagrams.http_response(access.readable_analysis(request, slug), number, fmt)
    except diagrams.NoSuchConnection as exc:
        raise Http404(str(exc)) from exc


@require_GET
def card_image(request: HttpRequest, slug: str) -> HttpResponse:
    """The link preview image (og:image, 1200 x 630 PNG). Anyone may fetch a public analysis's; a private one's is
    a 404 to whoever may not read it, exactly like a slug that does not exist (no login redirect either)."""
    analysis = access.readable_analysis(request, slug)
    try:
        data = diagrams.card_png(analysis)
    except DiagramError as exc:
        logger.warning("analysis %s: preview image: %s", analysis.slug, exc)
        data = None
    if data is None:
        raise Http404("nothing to draw yet")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "public, max-age=300" if analysis.public else "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_first
@require_GET
def compare_diagram(request: HttpRequest, slug: str, number: int, fmt: str) -> HttpResponse:
    """REDIRECT vs TPROXY: compared connection `number`'s two flow diagrams side by side."""
    try:
        return diagrams.http_response(access.readable_analysis(request, slug), number, fmt, compare=True)
    except diagrams.NoSuchConnection as exc:
        raise Http404(str(exc)) from exc


@login_first
@require_GET
def fix_artifact(request: HttpRequest, slug: str, patch: int, artifact: int) -> HttpResponse:
    """One artifact of the fix (1-based patch and artifact numbers) as a text/plain attachment."""
    analysis = access.readable_analysis(request, slug)
    patches = ((analysis.results or {}).get("fix") or {}).get("patches") or []
    if not 1 <= patch <= len(patches):
        raise Http404("no such patch")
    artifacts = patches[patch - 1].get("artifacts") or []
    if not 1 <= artifact <= len(artifacts):
        raise Http404("no such artifact")
    item = artifacts[artifact - 1]
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", str(patches[patch - 1].get("key") or f"patch-{patch}"))
    ext = ARTIFACT_EXT.get(str(item.get("kind")), "txt")
    response = HttpResponse(str(item.get("content", "")), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="meshviz-{key}-{artifact}.{ext}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------
# new analysis
# --------------------------------------------------------------------------


#: seconds a bundle from a failed submit is kept for the next one
KEPT_BUNDLE_SECONDS = 3600


def _kept_bundle_key(request: HttpRequest, token: str) -> str:
    return f"meshviz:kept-bundle:{request.user.pk}:{token}"


def _files_with_kept_bundle(request: HttpRequest) -> Any:
    """The request's files, plus the bundle kept from this user's failed submit when no new one was chosen."""
    token = request.POST.get("bundle_token", "")
    if "bundle" in request.FILES or not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token):
        return request.FILES
    kept = diagrams.cache_get(_kept_bundle_key(request, token))
    if not isinstance(kept, tuple) or len(kept) != 2:
        return request.FILES
    files = request.FILES.copy()
    files["bundle"] = SimpleUploadedFile(str(kept[0]), bytes(kept[1]), content_type="application/gzip")
    return files


def _keep_bundle(request: HttpRequest, files: Any) -> dict[str, str] | None:
    """Keep the submitted bundle for the next submit (a browser never keeps a file input's file)."""
    upload = files.get("bundle")
    if upload is None:
        return None
    upload.seek(0)
    data = upload.read(int(settings.MESHVIZ_MAX_UPLOAD_BYTES) + 1)
    if len(data) > int(settings.MESHVIZ_MAX_UPLOAD_BYTES):
        return None
    token = secrets.token_urlsafe(18)
    try:
        cache.set(_kept_bundle_key(request, token), (upload.name or "bundle.tar.gz", data), KEPT_BUNDLE_SECONDS)
    except ratelimit.cache_errors():
        return None  # no cache server: the bundle has to be chosen again
    return {"token": token, "name": upload.name or "bundle.tar.gz"}


@login_required
@require_http_methods(["GET", "POST"])
def new_analysis(request: HttpRequest) -> HttpResponse:
    kept: dict[str, str] | None = None
    if request.method == "POST":
        files = _files_with_kept_bundle(request)
        form = NewAnalysisForm(request.POST, files)
        if form.is_valid() and form.bundle_fields is not None:
            analysis = services.create_analysis(**form.bundle_fields, warnings=form.warnings, owner=request.user)
            enqueue(analysis)
            return redirect(analysis.permalink_path)
        if form.is_valid():
            data = form.cleaned_data
            analysis = services.create_analysis(
                iptables=data["iptables"],
                pod_ip=str(data["pod_ip"]),
                ip_rule=data["ip_rule"],
                ip_route=data["ip_route"],
                ip6tables=data["ip6tables"],
                ip6_rule=data["ip6_rule"],
                ip6_route=data["ip6_route"],
                addr=data["addr"],
                nftables=data["nftables"],
                sysctl=data["sysctl"],
                envoy_config_dump=data["envoy_config_dump"],
                app_ports=data["app_ports"],
                warnings=form.warnings,
                owner=request.user,
            )
            enqueue(analysis)
            return redirect(analysis.permalink_path)
        status = 400
        # keep every piece of evidence: what came in a file goes back into its text box
        if form.uploaded_texts:
            data = request.POST.copy()
            for name, text in form.uploaded_texts.items():
                data[name] = text
            form.data = data
        kept = _keep_bundle(request, files)
    else:
        form = NewAnalysisForm()
        status = 200
    context = {
        "form": form,
        "examples": examples.examples(),
        "errors": error_summary(form) if form.is_bound else [],
        "kept_bundle": kept,
    }
    return render(request, "web/new.html", context, status=status)


@login_required
@require_POST
def new_from_example(request: HttpRequest, name: str) -> HttpResponse:
    example = examples.get(name)
    if example is None:
        raise Http404("no such example")
    try:
        analysis = services.create_from_example(example, owner=request.user)
    except services.ExampleInvalid as e:  # a broken bundled example is a bug, not the visitor's problem
        logger.error("%s", e)
        return HttpResponse("this example is broken", status=500, content_type="text/plain")
    enqueue(analysis)
    return redirect(analysis.permalink_path)
