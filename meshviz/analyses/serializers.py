"""The analyses API's serializers: evidence as text, files, gzip and bundles (each bounded), connections, what a
created or read analysis looks like, and the error shape the schema documents.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from meshviz.engine.api import MAX_CONNECTIONS as ENGINE_MAX_CONNECTIONS
from meshviz.web import uploads

from . import access, bundles, progress, services
from .errors import EvidenceInvalid, EvidenceTooLarge
from .models import Analysis

MAX_CONNECTIONS = ENGINE_MAX_CONNECTIONS  # the engine's limit, stated in the schema

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
    direction = serializers.ChoiceField(
        choices=["inbound", "outbound", "udp"],
        default="inbound",
        help_text="udp: the application sends one datagram (a DNS query) to dst and waits for the answer",
    )
    client = serializers.CharField(required=False, help_text="inbound: the client's IP:PORT")
    port = serializers.IntegerField(required=False, min_value=1, max_value=65535, help_text="inbound: pod port")
    dst = serializers.CharField(required=False, help_text="outbound: the destination IP:PORT")
    app_uid = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=services.DEFAULT_APP_UID)
    app_gid = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=services.DEFAULT_APP_GID)
    dns_proxy = serializers.BooleanField(
        required=False, default=True, help_text="udp: the sidecar's DNS proxy (istio-agent) listens on 15053"
    )

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
            what = "a udp" if attrs["direction"] == "udp" else "an outbound"
            raise serializers.ValidationError({"dst": f"required for {what} connection"})
        out: dict[str, Any] = {
            "direction": attrs["direction"],
            "dst": _check_host_port(attrs["dst"], "dst"),
            "app_uid": attrs["app_uid"],
            "app_gid": attrs["app_gid"],
        }
        if attrs["direction"] == "udp" and not attrs["dns_proxy"]:
            out["dns_proxy"] = False
        return out


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
    fix = serializers.DictField(
        allow_null=True,
        help_text="the verified fix: `backend` (`iptables` or `nftables`: the firewall its commands are for), "
        "`patches` with their artifacts (`nft` commands and `nft -f` fragments for a native nftables pod), "
        "`nft_fragment` (every nft change as one `nft -f` fragment, else null)",
    )
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
