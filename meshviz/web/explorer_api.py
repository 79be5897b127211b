"""The explorer's interactive parts in the REST API (DRF), over the same functions as the pages (explorer.py).

Not registered by this module: the API's one router lives in meshviz/analyses/api.py, whose owner adds

    from meshviz.web.explorer_api import ExplorerViewSet
    router.register("explorer", ExplorerViewSet, basename="api-explorer")

which serves, for an analysis the caller may read (404 otherwise, like every API view):

    GET  /api/v1/explorer/{slug}/rules/?table=&chain=&target=&q=&family=&page=&per_page=   (one page of the rules)
    GET  /api/v1/explorer/{slug}/rules/{table}/{chain}/{n}/?family=
    GET  /api/v1/explorer/{slug}/compose/?entry=&iface=&src=&sport=&dst=&dport=&proto=&uid=&gid=&mark=&transparent=
    POST /api/v1/explorer/{slug}/whatif/      {"edits": [Edit.to_dict(), ...]}
    GET  /api/v1/explorer/{slug}/diff/{other_slug}/

Errors are the API's usual `{"errors": [{source, line, column, text, message}]}` with 400.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from meshviz.analyses import access, services
from meshviz.analyses.permissions import ReadPublicOrAuthenticated
from meshviz.engine import analysis_diff, whatif

from . import explorer

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
        # the API's one error shape ({"errors": [...]}); imported late: meshviz.analyses.api registers this viewset
        from meshviz.analyses.api import api_exception_handler

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
            context = explorer._rules_context(request, analysis)
        except explorer.BadInput as exc:
            return _bad(exc.errors)
        return Response(explorer.rules_json(context))

    @extend_schema(
        operation_id="explorer_rule",
        responses={200: _OK, 404: _ERRORS},
        summary="one rule: explanation, connections, steps around it",
    )
    @action(detail=True, methods=["get"], url_path=r"rules/(?P<table>[^/]+)/(?P<chain>.+)/(?P<index>\d+)")
    def rule(self, request: Request, slug: str, table: str, chain: str, index: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        family = explorer._family(request, analysis)
        return Response(explorer._rule_detail(analysis, table, chain, int(index), family))

    @extend_schema(responses={200: _OK, 400: _ERRORS, 404: _ERRORS}, summary="trace a composed packet")
    @action(detail=True, methods=["get"])
    def compose(self, request: Request, slug: str) -> Response:
        analysis = access.readable_analysis(request, slug)
        try:
            return Response(explorer.composer_result(analysis, {k: str(v) for k, v in request.query_params.items()}))
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
                return Response(explorer.whatif_result(analysis, explorer.parse_edits(items)))
            except explorer.BadInput as exc:
                return _bad(exc.errors)
        edits, errors = whatif.parse_edits(items if items is not None else [])
        if errors:
            return _bad([e.to_dict() for e in errors])
        try:
            return Response(explorer.whatif_result(analysis, edits))
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
