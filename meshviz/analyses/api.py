"""REST API v1 over analyses (DRF, documented by drf-spectacular), mounted under /api/v1/ by meshviz.api's router.

Bots authenticate with an API key (`Authorization: Api-Key mvz_...`), the browser with its session
(meshviz.accounts.auth). Who sees what is meshviz.analyses.access: an analysis is private to its owner
and the teams it is shared with, unless it was made public (read-only). The list shows the analyses
the caller owns or shares through a team; a public one is reached only through its unguessable slug.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from meshviz.accounts.models import Team
from meshviz.engine.api import MAX_CONNECTIONS as ENGINE_MAX_CONNECTIONS
from meshviz.web import uploads
from meshviz.web.parsers import BoundedJSONParser

from . import access, bundles, chat, diagrams, progress, services
from .errors import EvidenceInvalid, EvidenceTooLarge, api_exception_handler
from .models import Analysis
from .permissions import ReadPublicOrAuthenticated
from .tasks import enqueue

MAX_CONNECTIONS = ENGINE_MAX_CONNECTIONS

# --------------------------------------------------------------------------
# serializers
# --------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class EvidenceField(serializers.Field):
    """Evidence text: a JSON/form string or an uploaded file (multipart), UTF-8 text only."""

    def get_value(self, dictionary: Any) -> Any:
        # several Envoy inputs (istioctl proxy-config listener/cluster/route -o json) as repeated multipart parts
        if self.field_name == "envoy_config_dump" and hasattr(dictionary, "getlist"):
            values = dictionary.getlist(self.field_name)
            if len(values) > 1:
                return values
        return super().get_value(dictionary)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, list) and self.field_name == "envoy_config_dump":
            inputs = [(getattr(d, "name", "") or f"envoy_config_dump[{i}]", self._text(d)) for i, d in enumerate(data)]
            merged, errors = bundles.merge_envoy(inputs)
            if errors:
                raise EvidenceInvalid(errors)
            return merged
        return self._text(data)

    def _text(self, data: Any) -> str:
        name = services.SOURCES.get(self.field_name or "", self.field_name or "evidence")
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        if isinstance(data, UploadedFile):
            # read in pieces (gunzipped when it is gzip), so the file is held once, as text
            try:
                text = uploads.read_text(data, name, limit=limit)
            except uploads.TooLarge as exc:
                gz = "decompresses" in exc.message
                raise EvidenceTooLarge(name, None if gz else data.size, exc.message if gz else "") from exc
            except uploads.Unreadable as exc:
                raise EvidenceInvalid([services.error(name, exc.message)]) from exc
        elif isinstance(data, str):
            text = data
            if len(text.encode("utf-8", "surrogatepass")) > limit:
                raise EvidenceTooLarge(name, len(text.encode("utf-8", "surrogatepass")))
        else:
            raise serializers.ValidationError("expected text (a string or an uploaded file)")
        if "\x00" in text:
            raise EvidenceInvalid(
                [services.error(name, "contains NUL bytes: this looks like binary data, not the command's text output")]
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EvidenceInvalid([services.error(name, "not valid Unicode text (lone surrogates)")]) from exc
        return text

    def to_representation(self, value: Any) -> str:
        return str(value)


def _check_host_port(value: str, name: str) -> str:
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise serializers.ValidationError({name: f"expected IP:PORT, got {value!r}"}) from exc
    if address.version == 6 and not bracketed:
        raise serializers.ValidationError({name: f"an IPv6 address needs brackets: [{host}]:{port}, got {value!r}"})
    if address.version == 4 and bracketed:
        raise serializers.ValidationError({name: f"expected IP:PORT (brackets are for IPv6), got {value!r}"})
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise serializers.ValidationError({name: f"expected IP:PORT with a port in 1-65535, got {value!r}"})
    return value


#: Linux uids and gids: 0 to 4294967294 ((uid_t)-1 means "no change" to the kernel).
MAX_ID = 2**32 - 2


class ConnectionSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=["inbound", "outbound"], default="inbound")
    client = serializers.CharField(required=False, help_text="inbound: the client's IP:PORT")
    port = serializers.IntegerField(required=False, min_value=1, max_value=65535, help_text="inbound: pod port")
    dst = serializers.CharField(required=False, help_text="outbound: the destination IP:PORT")
    app_uid = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=services.DEFAULT_APP_UID)
    app_gid = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=services.DEFAULT_APP_GID)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["direction"] == "inbound":
            missing = [k for k in ("client", "port") if k not in attrs]
            if missing:
                raise serializers.ValidationError({k: "required for an inbound connection" for k in missing})
            return {
                "direction": "inbound",
                "client": _check_host_port(attrs["client"], "client"),
                "port": attrs["port"],
            }
        if "dst" not in attrs:
            raise serializers.ValidationError({"dst": "required for an outbound connection"})
        return {
            "direction": "outbound",
            "dst": _check_host_port(attrs["dst"], "dst"),
            "app_uid": attrs["app_uid"],
            "app_gid": attrs["app_gid"],
        }


@extend_schema_field(OpenApiTypes.BINARY)
class BundleField(serializers.Field):
    """A collect.sh bundle (meshviz-NS-POD.tar.gz): an uploaded file, or the raw `application/gzip` body."""

    def to_internal_value(self, data: Any) -> tuple[str, bytes]:
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        if isinstance(data, UploadedFile):
            if data.size is not None and data.size > limit:
                raise EvidenceTooLarge("bundle", data.size)
            raw: bytes = data.read(limit + 1)
            name = data.name or bundles.BUNDLE_SOURCE
        elif isinstance(data, bytes):
            raw, name = data, bundles.BUNDLE_SOURCE
        else:
            raise serializers.ValidationError("expected a .tar.gz file (multipart) or an application/gzip body")
        if len(raw) > limit:
            raise EvidenceTooLarge("bundle", len(raw))
        return name, raw

    def to_representation(self, value: Any) -> str:
        return str(value)


class GzipBundleParser(BaseParser):
    """An `application/gzip` request body is a bundle; the other fields may come as query parameters."""

    media_type = "application/gzip"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise EvidenceTooLarge("bundle", len(raw))
        request = (parser_context or {}).get("request")
        params = dict(request.query_params.items()) if request is not None else {}
        return {**params, "bundle": raw}


class XGzipBundleParser(GzipBundleParser):
    media_type = "application/x-gzip"


class AnalysisCreateSerializer(serializers.Serializer):
    bundle = BundleField(
        required=False,
        help_text="a collect.sh bundle (meshviz-NS-POD.tar.gz) in place of the evidence files and pod fields",
    )
    iptables = EvidenceField(
        required=False,
        help_text="iptables-save output from the pod (required without bundle; ip6tables alone for IPv6-only pods)",
    )
    ip_rule = EvidenceField(required=False, help_text="`ip rule` output")
    ip_route = EvidenceField(required=False, help_text="`ip route show table all` output")
    ip6tables = EvidenceField(required=False, help_text="ip6tables-save output (IPv6 rules)")
    ip6_rule = EvidenceField(required=False, help_text="`ip -6 rule` output")
    ip6_route = EvidenceField(required=False, help_text="`ip -6 route show table all` output")
    addr = EvidenceField(required=False, help_text="`ip -o addr` output (interfaces and addresses)")
    nftables = EvidenceField(
        required=False, help_text="`nft list ruleset` output (pods whose interception is native nftables)"
    )
    sysctl = EvidenceField(required=False, help_text="`sysctl -a` output")
    envoy_config_dump = EvidenceField(
        required=False, help_text="Envoy /config_dump JSON; secrets are redacted before it is stored"
    )
    pod_ip = serializers.IPAddressField(
        required=False,
        help_text="the pod's IP; optional when the evidence says it (Envoy's node id, or a single pod address in the "
        "routes or `ip addr`)",
    )
    pod_name = serializers.CharField(required=False, allow_blank=True, max_length=253, default="")
    namespace = serializers.CharField(required=False, allow_blank=True, max_length=63, default="")
    proxy_uid = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_ID, default=None)
    proxy_gid = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=MAX_ID, default=None)
    labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    app_ports = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=65535),
        required=False,
        default=list,
        max_length=MAX_CONNECTIONS,
    )
    connections = ConnectionSerializer(many=True, required=False, max_length=MAX_CONNECTIONS)

    def to_internal_value(self, data: Any) -> Any:
        # without a bundle, iptables (or ip6tables) is required: reported with the other fields' errors
        missing: dict[str, Any] = {}
        no_rules = (
            hasattr(data, "get")
            and data.get("iptables") in (None, "")
            and not data.get("ip6tables")
            and not data.get("nftables")
        )
        if no_rules and not data.get("bundle"):
            missing = {"iptables": [serializers.Field.default_error_messages["required"]]}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if missing and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**missing, **exc.detail}) from exc
            raise
        if missing:
            raise serializers.ValidationError(missing)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "bundle" in attrs:
            return self._from_bundle(attrs)
        errors, warnings = services.validate_evidence(
            iptables=attrs.get("iptables") or "",
            ip_rule=attrs.get("ip_rule"),
            ip_route=attrs.get("ip_route"),
            ip6tables=attrs.get("ip6tables"),
            ip6_rule=attrs.get("ip6_rule"),
            ip6_route=attrs.get("ip6_route"),
            addr=attrs.get("addr"),
            nftables=attrs.get("nftables"),
            sysctl=attrs.get("sysctl"),
            envoy_config_dump=attrs.get("envoy_config_dump"),
            pod_ip=attrs.get("pod_ip"),
        )
        if errors:
            raise EvidenceInvalid(errors)
        if not attrs.get("pod_ip"):
            attrs["pod_ip"] = services.pod_ip_from_evidence(attrs)
            if attrs["pod_ip"] is None:
                raise EvidenceInvalid(
                    [
                        services.error(
                            "pod_ip",
                            "the pod IP is not in the evidence (no Envoy node id, no single pod address in the routes "
                            "or ip addr output): give pod_ip",
                        )
                    ]
                )
        attrs["warnings"] = warnings
        return attrs

    def _from_bundle(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [f for f in services.EVIDENCE_FIELDS if attrs.get(f)]
        if given:
            raise serializers.ValidationError(
                {"bundle": f"send either a bundle or the evidence files, not both (also got: {', '.join(given)})"}
            )
        name, raw = attrs.pop("bundle")
        bundle, errors = bundles.read_uploaded_bundle(raw, name)
        if bundle is None:
            raise EvidenceInvalid(errors)
        fields, errors, warnings = bundles.bundle_analysis_fields(bundle)
        if errors:
            raise EvidenceInvalid(errors)
        # what the request says explicitly wins over what the bundle's pod spec says
        for key in ("pod_ip", "pod_name", "namespace", "proxy_uid", "proxy_gid", "labels", "app_ports"):
            if attrs.get(key) not in (None, "", {}, []):
                fields[key] = attrs[key]
        return {**attrs, **fields, "warnings": warnings}


class AnalysisCreatedSerializer(serializers.Serializer):
    slug = serializers.CharField()
    permalink = serializers.URLField()
    url = serializers.URLField(help_text="this analysis in the API")
    state = serializers.ChoiceField(choices=Analysis.State.choices)
    summary = serializers.CharField(help_text="one line for a chat message: verdict and permalink")


class SharingSerializer(serializers.Serializer):
    public = serializers.BooleanField(required=False, help_text="anyone with the permalink may read it")
    teams = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="names of the teams it is shared with (read and re-run); only your own teams",
    )


class AnalysisSerializer(AnalysisCreatedSerializer):
    owner = serializers.CharField(allow_null=True)
    public = serializers.BooleanField()
    teams = serializers.ListField(child=serializers.CharField())
    origin = serializers.CharField()
    origin_notes = serializers.ListField(child=serializers.CharField())
    derived_from = serializers.CharField(allow_null=True, help_text="slug of the analysis this one derives from")
    error = serializers.CharField()
    engine_version = serializers.CharField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    pod = serializers.DictField()
    connections = serializers.ListField(child=serializers.DictField())
    verdicts = serializers.ListField(child=serializers.DictField(), help_text="one per connection")
    findings = serializers.ListField(child=serializers.DictField(), help_text="per connection, assumptions excluded")
    fix = serializers.DictField(allow_null=True)
    parse_warnings = serializers.ListField(child=serializers.DictField())


ERRORS = inline_serializer(
    "Errors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "Error",
                {
                    "source": serializers.CharField(),
                    "line": serializers.IntegerField(),
                    "column": serializers.IntegerField(),
                    "text": serializers.CharField(),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)
ERROR_RESPONSES = {
    400: OpenApiResponse(ERRORS, "invalid evidence or request"),
    401: OpenApiResponse(ERRORS, "no or an unknown API key"),
    403: OpenApiResponse(ERRORS, "shared with you read-only"),
    404: OpenApiResponse(ERRORS, "no analysis with that slug, or not shared with you"),
    429: OpenApiResponse(ERRORS, "over MESHVIZ_API_RATE for this API key"),
    409: OpenApiResponse(ERRORS, "no results yet"),
    413: OpenApiResponse(ERRORS, "evidence over MESHVIZ_MAX_UPLOAD_BYTES"),
}


def represent(analysis: Analysis, request: Request, *, full: bool = True) -> dict[str, Any]:
    permalink = request.build_absolute_uri(analysis.permalink_path)
    data: dict[str, Any] = {
        "slug": analysis.slug,
        "permalink": permalink,
        "url": request.build_absolute_uri(f"/api/v1/analyses/{analysis.slug}/"),
        "state": analysis.state,
        "summary": services.summary_line(analysis, permalink),
    }
    if analysis.state in (Analysis.State.QUEUED, Analysis.State.RUNNING):
        # {step, steps, doing} while it runs (meshviz.analyses.progress); null before it starts (the short form
        # leaves it out then)
        now = progress.of(analysis.pk)
        if now is not None or full:
            data["progress"] = now
    if not full:
        return data
    results = analysis.results or {}
    stories = results.get("stories", [])
    data.update(
        {
            "owner": analysis.owner.get_username() if analysis.owner else None,
            "public": analysis.public,
            # team names and the original's slug only for those who may see them (not every public reader)
            "teams": [t.name for t in analysis.teams.all()] if access.can_write(request.user, analysis) else [],
            "origin": analysis.origin,
            "origin_notes": analysis.origin_notes,
            "derived_from": (
                analysis.derived_from.slug
                if analysis.derived_from and access.can_read(request.user, analysis.derived_from)
                else None
            ),
            "error": analysis.error,
            "engine_version": results.get("engine_version", ""),
            "created": analysis.created,
            "updated": analysis.updated,
            "pod": {
                "ip": str(analysis.pod_ip),
                "name": analysis.pod_name,
                "namespace": analysis.namespace,
                "interception_mode": analysis.interception_mode,
                "proxy_uid": analysis.proxy_uid,
                "proxy_gid": analysis.proxy_gid,
                "labels": analysis.labels,
                "app_ports": analysis.app_ports,
                "envoy_redactions": analysis.envoy_redactions,
                # what the engine read from the evidence: interface, sidecar identity, mark and table, ports
                "profile": (stories[0].get("facts") or {}).get("profile") if stories else None,
            },
            "connections": analysis.connections,
            "verdicts": [
                {"connection": s["connection"], "verdict": s["verdict"], "summary": s["verdict_line"]} for s in stories
            ],
            "findings": [
                {
                    "connection": s["connection"],
                    "findings": [f for f in s["findings"] if f.get("kind") != "assumption"],
                    "assumptions": [f["text"] for f in s["findings"] if f.get("kind") == "assumption"],
                }
                for s in stories
            ],
            "fix": results.get("fix"),
            "parse_warnings": analysis.parse_warnings,
        }
    )
    return data


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
        analysis.refresh_from_db()
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
