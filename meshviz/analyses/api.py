"""REST API v1 over analyses (DRF, documented by drf-spectacular), mounted under /api/v1/ by meshviz.api's router.

Bots authenticate with an API key (`Authorization: Api-Key mvz_...`), the browser with its session
(meshviz.accounts.auth). Who sees what is meshviz.analyses.access: an analysis is private to its owner
and the teams it is shared with, unless it was made public (read-only). The list shows the analyses
the caller owns or shares through a team; a public one is reached only through its unguessable slug.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from meshviz.accounts.models import Team
from meshviz.analyses.serializers import (
    ERROR_RESPONSES,
    ERRORS,
    AnalysisCreatedSerializer,
    AnalysisCreateSerializer,
    AnalysisSerializer,
    ConnectionSerializer,
    GzipBundleParser,
    SharingSerializer,
    XGzipBundleParser,
    represent,
)
from meshviz.web import uploads
from meshviz.web.parsers import BoundedJSONParser

from . import access, chat, diagrams, services
from .errors import EvidenceTooLarge, api_exception_handler
from .models import Analysis
from .permissions import ReadPublicOrAuthenticated
from .tasks import enqueue

# --------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------


class AnalysisPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class AnalysisViewSet(viewsets.GenericViewSet):
    """Create an analysis from a pod's evidence, read its verdicts, add connections, compare modes, get the fix."""

    queryset = Analysis.objects.all()
    lookup_field = "slug"
    lookup_value_regex = r"[A-Za-z0-9_-]{16,64}"
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser, GzipBundleParser, XGzipBundleParser]
    serializer_class = AnalysisCreateSerializer
    permission_classes = [ReadPublicOrAuthenticated]
    pagination_class = AnalysisPagination

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    def get_object(self) -> Analysis:
        """The analysis in the URL, if the caller may read it (and change it, for anything but a read)."""
        slug = str(self.kwargs.get("slug", ""))
        if self.request.method in permissions.SAFE_METHODS:
            return access.readable_analysis(self.request, slug)
        return access.writable_analysis(self.request, slug)

    @extend_schema(
        responses={200: AnalysisCreatedSerializer(many=True), **ERROR_RESPONSES},
        summary="The analyses you own or that are shared with your teams, newest first",
    )
    def list(self, request: Request) -> Response:
        qs = access.member_of_analysis(request.user).order_by("-created")
        page = self.paginate_queryset(qs)
        items = page if page is not None else list(qs)
        data = [represent(a, request, full=False) for a in items]
        return self.get_paginated_response(data) if page is not None else Response(data)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > uploads.max_request_bytes():
            raise EvidenceTooLarge(
                "the request body",
                int(length),
                f"the request body ({int(length):,} bytes) is larger than the {uploads.max_request_bytes():,}-byte "
                "limit (MESHVIZ_MAX_REQUEST_BYTES)",
            )

    @extend_schema(
        request={
            "application/json": AnalysisCreateSerializer,
            "multipart/form-data": AnalysisCreateSerializer,
            "application/gzip": OpenApiTypes.BINARY,
        },
        responses={201: AnalysisCreatedSerializer, **ERROR_RESPONSES},
        summary="Create an analysis from a pod's evidence",
        description="Post the pod's evidence (JSON, a multipart upload or a collect.sh bundle as application/gzip). "
        "Only the iptables rules are required; the pod IP may be left out when the Envoy dump's node id or the routes "
        "say it. The answer (201) holds the slug, the permalink and the URL to poll; the engine runs in the "
        "background (202 when the queue is down: it runs once it is back).",
    )
    def create(self, request: Request) -> Response:
        ser = AnalysisCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        analysis = services.create_analysis(
            iptables=data.get("iptables") or "",
            pod_ip=data["pod_ip"],
            ip_rule=data.get("ip_rule", ""),
            ip_route=data.get("ip_route", ""),
            ip6tables=data.get("ip6tables", ""),
            ip6_rule=data.get("ip6_rule", ""),
            ip6_route=data.get("ip6_route", ""),
            addr=data.get("addr", ""),
            nftables=data.get("nftables", ""),
            sysctl=data.get("sysctl", ""),
            envoy_config_dump=data.get("envoy_config_dump", ""),
            pod_name=data["pod_name"],
            namespace=data["namespace"],
            proxy_uid=data["proxy_uid"],
            proxy_gid=data["proxy_gid"],
            labels=data["labels"],
            app_ports=data["app_ports"],
            connections=data.get("connections"),
            warnings=data["warnings"],
            owner=access.owner_for(request),
            **{k: data[k] for k in ("origin", "origin_notes") if k in data},
        )
        dispatched = enqueue(analysis)
        # what the short representation reads and the task may have changed (not the evidence just stored)
        analysis.refresh_from_db(fields=["state", "results", "error", "engine_version", "updated", "revision"])
        # 202 when the broker did not take the task (it is down): the analysis is stored and queued, and the
        # re-dispatcher sends it when the broker is back; the client polls its URL as usual.
        return Response(
            represent(analysis, request, full=False),
            status=status.HTTP_202_ACCEPTED if dispatched.sent is False else status.HTTP_201_CREATED,
        )

    @extend_schema(
        responses={200: AnalysisSerializer, **ERROR_RESPONSES},
        summary="Read one analysis: its state, verdicts, findings, comparison and fix",
        description="The whole analysis: poll it until `state` is done or failed. It holds every connection's story, "
        "so it can be megabytes for a pod with a large Envoy dump: bots that need the answer only read "
        "`verdicts/` (under 10 KB) or `summary`.",
    )
    def retrieve(self, request: Request, slug: str | None = None) -> Response:
        return Response(represent(self.get_object(), request))

    @extend_schema(
        request=ConnectionSerializer,
        responses={202: AnalysisSerializer, **ERROR_RESPONSES},
        summary="Add a connection and re-run (the previous results stay until the new ones exist)",
    )
    @action(detail=True, methods=["post"])
    def connections(self, request: Request, slug: str | None = None) -> Response:
        ser = ConnectionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            analysis = services.add_connection(self.get_object(), dict(ser.validated_data))
        except services.TooManyConnections as exc:
            raise exceptions.ValidationError({"connections": str(exc)}) from exc
        enqueue(analysis)
        analysis.refresh_from_db()
        return Response(represent(analysis, request), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={204: None, **ERROR_RESPONSES}, summary="Delete the analysis (owner only)")
    def destroy(self, request: Request, slug: str | None = None) -> Response:
        analysis = access.managed_analysis(request, str(slug))
        services.delete_analysis(analysis, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={202: AnalysisSerializer, **ERROR_RESPONSES},
        summary="Re-run with the current engine (the previous results stay until the new ones exist)",
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, slug: str | None = None) -> Response:
        analysis = services.queue_rerun(self.get_object())
        enqueue(analysis, force=True)
        analysis.refresh_from_db()
        return Response(represent(analysis, request), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        methods=["GET"],
        responses={200: SharingSerializer, **ERROR_RESPONSES},
        summary="Who the analysis is shared with",
    )
    @extend_schema(
        methods=["POST"],
        request=SharingSerializer,
        responses={200: SharingSerializer, **ERROR_RESPONSES},
        summary="Share with your teams and/or make the permalink public (owner only)",
    )
    @action(detail=True, methods=["get", "post"])
    def sharing(self, request: Request, slug: str | None = None) -> Response:
        if request.method == "GET":
            # who it is shared with is for those who share it, not for every reader of a public permalink
            analysis = access.writable_analysis(request, str(slug))
        else:
            analysis = access.managed_analysis(request, str(slug))
            ser = SharingSerializer(data=request.data)
            ser.is_valid(raise_exception=True)
            names = ser.validated_data.get("teams")
            teams = None
            if names is not None:
                teams = list(Team.objects.filter(name__in=names, members=request.user))
                unknown = sorted(set(names) - {t.name for t in teams})
                if unknown:
                    raise serializers.ValidationError({"teams": f"not a team of yours: {', '.join(unknown)}"})
            services.set_sharing(analysis, public=ser.validated_data.get("public"), teams=teams, actor=request.user)
        return Response({"public": analysis.public, "teams": [t.name for t in analysis.teams.all()]})

    @extend_schema(
        responses={
            200: inline_serializer(
                "Comparison", {"state": serializers.CharField(), "comparison": serializers.DictField(allow_null=True)}
            ),
            **ERROR_RESPONSES,
        },
        summary="Every inbound connection as uploaded and in the other interception mode",
    )
    @action(detail=True, methods=["get"])
    def comparison(self, request: Request, slug: str | None = None) -> Response:
        return self._results_part("comparison")

    @extend_schema(
        responses={
            200: inline_serializer(
                "Fix", {"state": serializers.CharField(), "fix": serializers.DictField(allow_null=True)}
            ),
            **ERROR_RESPONSES,
        },
        summary="The verified fix for the first inbound connection (goal: preserve the client IP)",
    )
    @action(detail=True, methods=["get"])
    def fix(self, request: Request, slug: str | None = None) -> Response:
        return self._results_part("fix")

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # a diagram is an image whatever the client accepts (an <img> asks for image/*); errors stay JSON
        return super().perform_content_negotiation(
            request, force=force or getattr(self, "action", "") in ("diagram", "comparison_diagram", "summary")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=["svg", "png"], description="svg or png"),
            OpenApiParameter(
                "connection", int, OpenApiParameter.QUERY, default=1, description="1-based connection number"
            ),
        ],
        responses={
            (200, "image/svg+xml"): OpenApiTypes.BINARY,
            (200, "image/png"): OpenApiTypes.BINARY,
            404: OpenApiResponse(ERRORS, "no analysis with that slug, or no such connection"),
            503: OpenApiResponse(ERRORS, "Graphviz could not render the diagram"),
        },
        summary="The flow diagram of one connection (Graphviz), as SVG or PNG",
    )
    def diagram(self, request: Request, slug: str | None = None, fmt: str = "svg") -> HttpResponse:
        analysis = self.get_object()
        raw = request.query_params.get("connection", "1")
        if not raw.isdigit():
            raise exceptions.NotFound(f"no connection {raw!r}")
        try:
            return diagrams.http_response(analysis, int(raw), fmt)
        except diagrams.NoSuchConnection as exc:
            raise exceptions.NotFound(str(exc)) from exc

    @extend_schema(
        parameters=[
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=["svg", "png"], description="svg or png"),
            OpenApiParameter(
                "connection",
                int,
                OpenApiParameter.QUERY,
                default=1,
                description="1-based number of the compared connection (the inbound connections, in order)",
            ),
        ],
        responses={
            (200, "image/svg+xml"): OpenApiTypes.BINARY,
            (200, "image/png"): OpenApiTypes.BINARY,
            404: OpenApiResponse(ERRORS, "no analysis with that slug, no comparison or no such connection"),
            503: OpenApiResponse(ERRORS, "Graphviz could not render the diagram"),
        },
        summary="REDIRECT vs TPROXY: both modes' flow diagrams of a connection side by side, as SVG or PNG",
        description="The connection drawn as uploaded and in the other interception mode, next to each other, with the "
        "steps taken in one mode only highlighted.\n\n"
        '```sh\ncurl -H "Authorization: Bearer $MESHVIZ_KEY" -o compare.png \\\n'
        "  https://meshviz.example.com/api/v1/analyses/SLUG/comparison/diagram.png?connection=1\n```",
    )
    def comparison_diagram(self, request: Request, slug: str | None = None, fmt: str = "svg") -> HttpResponse:
        analysis = self.get_object()
        raw = request.query_params.get("connection", "1")
        if not raw.isdigit():
            raise exceptions.NotFound(f"no connection {raw!r}")
        try:
            return diagrams.http_response(analysis, int(raw), fmt, compare=True)
        except diagrams.NoSuchConnection as exc:
            raise exceptions.NotFound(str(exc)) from exc

    @extend_schema(
        responses={
            200: inline_serializer(
                "Verdicts",
                {
                    "slug": serializers.CharField(),
                    "state": serializers.CharField(),
                    "permalink": serializers.URLField(),
                    "pod": serializers.DictField(),
                    "summary": serializers.CharField(),
                    "connections": serializers.ListField(child=serializers.DictField()),
                    "connections_total": serializers.IntegerField(),
                    "fix": serializers.DictField(),
                },
            ),
            **ERROR_RESPONSES,
        },
        summary="The verdicts only: each connection's verdict and cause, the verified fix's first command, the "
        "permalink (under 10 KB whatever the evidence's size)",
        description="For bots and scripts that need the answer, not the evidence: the full analysis of a pod with a "
        "large Envoy dump is megabytes of JSON, this stays under 10 KB.\n\n"
        '```sh\ncurl -s -H "Authorization: Bearer $MESHVIZ_KEY" \\\n'
        "  https://meshviz.example.com/api/v1/analyses/SLUG/verdicts/\n```",
    )
    @action(detail=True, methods=["get"])
    def verdicts(self, request: Request, slug: str | None = None) -> Response:
        analysis = self.get_object()
        return Response(chat.verdicts(analysis, request.build_absolute_uri(analysis.permalink_path)))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                OpenApiParameter.QUERY,
                enum=[*chat.FORMATS],  # not list(): the class body has its own `list`
                default="text",
                description="text (plain), markdown, or slack (a Block Kit message: post it as is)",
            )
        ],
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            **ERROR_RESPONSES,
        },
        summary="A chat message about the analysis: the verdict, the cause, the fix's first command, the permalink",
        description="What a bot posts as is. `format=slack` is a Slack Block Kit payload "
        '(`{"text": ..., "blocks": [...]}`) for chat.postMessage or an incoming webhook.\n\n'
        '```sh\ncurl -s -H "Authorization: Bearer $MESHVIZ_KEY" \\\n'
        "  'https://meshviz.example.com/api/v1/analyses/SLUG/summary?format=slack'\n```",
    )
    # not a router action: bots write /summary?format=slack, without the router's trailing slash (meshviz/urls.py)
    def summary(self, request: Request, slug: str | None = None) -> HttpResponse:
        analysis = self.get_object()
        fmt = request.query_params.get("format", "text")
        if fmt not in chat.FORMATS:
            raise exceptions.ValidationError({"format": f"one of {', '.join(chat.FORMATS)}, not {fmt!r}"})
        message = chat.summary(analysis, request.build_absolute_uri(analysis.permalink_path), fmt)
        if isinstance(message, dict):
            return JsonResponse(message)
        kind = "text/markdown" if fmt == "markdown" else "text/plain"
        return HttpResponse(message, content_type=f"{kind}; charset=utf-8")

    def _results_part(self, key: str) -> Response:
        analysis = self.get_object()
        if not analysis.results:
            return Response(
                {
                    "errors": [
                        services.error("analysis", f"no results yet (state: {analysis.state}); poll the analysis")
                    ]
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"state": analysis.state, key: analysis.results.get(key)})


def summary_slash(request: HttpRequest, slug: str) -> HttpResponse:
    """`/summary/` (the router's trailing-slash style): a 308 to `/summary`, the query string kept."""
    location = f"/api/v1/analyses/{slug}/summary"
    if request.META.get("QUERY_STRING"):
        location += "?" + request.META["QUERY_STRING"]
    response = HttpResponsePermanentRedirect(location)
    response.status_code = 308
    return response
