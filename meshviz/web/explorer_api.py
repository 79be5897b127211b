"""The explorer's interactive parts in the REST API (DRF), over the same functions as the pages (explorer.py).

Nested resources of an analysis (meshviz/urls.py maps them), for an analysis the caller may read (404 otherwise,
like every API view):

    GET  /api/v1/analyses/{slug}/rules/?table=&chain=&target=&q=&family=&backend=&page=&per_page=   (one page)
    GET  /api/v1/analyses/{slug}/rules/{table}/{chain}/{n}/?family=    (an nft rule: table "FAMILY NAME")
    GET  /api/v1/analyses/{slug}/traces/?entry=&iface=&src=&sport=&dst=&dport=&proto=&uid=&gid=&mark=&transparent=
    POST /api/v1/analyses/{slug}/what-ifs/      {"edits": [Edit.to_dict(), ...]}
    GET  /api/v1/analyses/{slug}/diffs/{other_slug}/

The paths of the previous release, /api/v1/explorer/{slug}/rules|compose|whatif|diff/..., answer with a permanent
redirect (308: method and body kept) to these for one more release (`moved`).

Errors are the API's usual `{"errors": [{source, line, column, text, message}]}` with 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from meshviz.analyses import access, services
from meshviz.analyses.errors import api_exception_handler
from meshviz.analyses.permissions import ReadPublicOrAuthenticated
from meshviz.engine.api import analysis_diff, whatif

from . import explorer, explorer_composer, explorer_rules, explorer_whatif

_OK = OpenApiResponse(OpenApiTypes.OBJECT)
_ERRORS = OpenApiResponse(OpenApiTypes.OBJECT, description="{errors: [{source, line, column, text, message}]}")


def _bad(errors: list[dict[str, Any]]) -> Response:
    return Response({"errors": errors}, status=400)


class ExplorerViewSet(viewsets.ViewSet):
    """Rule table, rule detail, packet composer, what-if and diff of an analysis."""

    lookup_field = "slug"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    # reading a public analysis needs no key; a what-if needs a user (it is computed for someone)
    permission_classes = [ReadPublicOrAuthenticated]

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    @extend_schema(
        operation_id="explorer_rules",
        responses={200: _OK, 404: _ERRORS},
        summary="every rule with its explanation and hits (filtered)",
    )
    @action(detail=True, methods=["get"])
    def rules(self, request: Request, slug: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        try:
            context = explorer_rules._rules_context(request, analysis)
        except explorer.BadInput as exc:
            return _bad(exc.errors)
        return Response(explorer_rules.rules_json(context))

    @extend_schema(
        operation_id="explorer_rule",
        responses={200: _OK, 404: _ERRORS},
        summary="one rule: explanation, connections, steps around it",
    )
    @action(detail=True, methods=["get"], url_path=r"rules/(?P<table>[^/]+)/(?P<chain>.+)/(?P<index>\d+)")
    def rule(self, request: Request, slug: str, table: str, chain: str, index: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        family = explorer._family(request, analysis)
        return Response(explorer_rules._rule_detail(analysis, table, chain, int(index), family))

    @extend_schema(responses={200: _OK, 400: _ERRORS, 404: _ERRORS}, summary="trace a composed packet")
    @action(detail=True, methods=["get"])
    def compose(self, request: Request, slug: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        try:
            return Response(
                explorer_composer.composer_result(analysis, {k: str(v) for k, v in request.query_params.items()})
            )
        except explorer.BadInput as exc:
            return _bad(exc.errors)

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: _OK, 400: _ERRORS, 404: _ERRORS},
        summary="apply edits to a scratch copy and re-trace every connection",
    )
    @action(detail=True, methods=["post"])
    def whatif(self, request: Request, slug: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        items = request.data.get("edits") if isinstance(request.data, dict) else None
        if isinstance(items, str):
            try:
                return Response(explorer_whatif.whatif_result(analysis, explorer_whatif.parse_edits(items)))
            except explorer.BadInput as exc:
                return _bad(exc.errors)
        edits, errors = whatif.parse_edits(items if items is not None else [])
        if errors:
            return _bad([e.to_dict() for e in errors])
        try:
            return Response(explorer_whatif.whatif_result(analysis, edits))
        except explorer.BadInput as exc:
            return _bad(exc.errors)

    @extend_schema(responses={200: _OK, 404: _ERRORS}, summary="diff this analysis (before) with another (after)")
    @action(detail=True, methods=["get"], url_path=r"diff/(?P<other>[A-Za-z0-9_-]+)")
    def diff(self, request: Request, slug: str, other: str) -> Response:
        a = access.readable_analysis(request, slug)
        b = access.readable_analysis(request, other)
        result = analysis_diff.diff_evidence(
            services.evidence_of(a), services.evidence_of(b), explorer._stories(a), explorer._stories(b)
        ).to_dict()
        return Response(json.loads(json.dumps(result, default=str)))


#: The previous release's explorer paths and where each now lives (nested under its analysis).
_MOVED = (
    (re.compile(r"^(?P<slug>[A-Za-z0-9_-]+)/rules/(?P<rest>.*)$"), "{slug}/rules/{rest}"),
    (re.compile(r"^(?P<slug>[A-Za-z0-9_-]+)/compose/$"), "{slug}/traces/"),
    (re.compile(r"^(?P<slug>[A-Za-z0-9_-]+)/whatif/$"), "{slug}/what-ifs/"),
    (re.compile(r"^(?P<slug>[A-Za-z0-9_-]+)/diff/(?P<other>[A-Za-z0-9_-]+)/$"), "{slug}/diffs/{other}/"),
)


def moved(request: HttpRequest, rest: str) -> HttpResponse:
    """/api/v1/explorer/... (the previous release): a 308 to the nested resource, query string kept."""
    for pattern, target in _MOVED:
        m = pattern.match(rest)
        if m:
            location = "/api/v1/analyses/" + target.format(**{k: v or "" for k, v in m.groupdict().items()})
            if request.META.get("QUERY_STRING"):
                location += "?" + request.META["QUERY_STRING"]
            response = HttpResponsePermanentRedirect(location)
            response.status_code = 308  # keeps the method and body (a what-if is a POST)
            return response
    raise Http404("no such explorer resource")
