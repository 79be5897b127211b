"""REST API v1 for live collection: /api/v1/clusters/, /api/v1/collections/, /api/v1/watched-pods/.

`register(router)` adds the viewsets to meshviz's API router. Every object belongs to its owner: another
user's cluster, collection or watched pod is a 404, exactly like one that does not exist. Errors have the
analyses API's shape, `{"errors": [{source, line, column, text, message}]}`; errors reported by the cluster
add `kind`, `step` and `retryable` (meshviz.collect.errors.CollectError).
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import BaseRouter

from meshviz.accounts import audit
from meshviz.analyses import services as analyses
from meshviz.analyses.errors import api_exception_handler
from meshviz.analyses.models import Analysis
from meshviz.analyses.serializers import ERRORS, EvidenceField
from meshviz.collect.errors import CollectError
from meshviz.web.parsers import BoundedJSONParser

from . import connect, crypto, services, steps
from .models import Cluster, CollectionJob, WatchedPod
from .tasks import queue_check

#: HTTP status for an error reported by the cluster, by CollectError.kind. The cluster is upstream: when it
#: cannot be reached or answers garbage that is a gateway error (502/504), never a 500.
COLLECT_ERROR_STATUS = {
    "forbidden": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "container_not_running": status.HTTP_409_CONFLICT,
    "exec_unsupported": status.HTTP_409_CONFLICT,
    "no_sidecar": status.HTTP_409_CONFLICT,
    "invalid_kubeconfig": status.HTTP_400_BAD_REQUEST,
    "bad_output": status.HTTP_502_BAD_GATEWAY,
    "unreachable": status.HTTP_502_BAD_GATEWAY,
    "timeout": status.HTTP_504_GATEWAY_TIMEOUT,
}

#: A Kubernetes namespace (DNS label) and pod name (DNS subdomain).
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
POD_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def collect_error(exc: CollectError) -> dict[str, Any]:
    return {
        **analyses.error("cluster", f"{exc.message} (while {exc.step})", text=exc.kind),
        "kind": exc.kind,
        "step": exc.step,
        "retryable": bool(exc.retryable),
    }


class EncryptionUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "encryption_key_missing"


def clusters_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        view = context.get("view")
        noun = getattr(view, "noun", "object")
        exc = exceptions.NotFound(f"no {noun} with that id (or it is not yours)")
    if isinstance(exc, CollectError):
        return Response({"errors": [collect_error(exc)]}, status=COLLECT_ERROR_STATUS.get(exc.kind, 502))
    if isinstance(exc, connect.KubeconfigInvalid):
        return Response({"errors": [analyses.error("kubeconfig", exc.message)]}, status=400)
    if isinstance(exc, services.BrowsePending):
        response = Response(
            {"state": "pending", "detail": "a worker is asking the cluster; ask again in a moment"},
            status=status.HTTP_202_ACCEPTED,
        )
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, connect.InClusterForbidden):
        return Response({"errors": [analyses.error("in_cluster", str(exc))]}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, crypto.EncryptionKeyMissing | crypto.EncryptionKeyInvalid):
        return Response(
            {"errors": [analyses.error("MESHVIZ_ENCRYPTION_KEY", str(exc))]},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return api_exception_handler(exc, context)


ERROR_RESPONSES = {
    400: OpenApiResponse(ERRORS, "invalid request or kubeconfig"),
    401: OpenApiResponse(ERRORS, "not authenticated"),
    404: OpenApiResponse(ERRORS, "not found, or not yours"),
    503: OpenApiResponse(ERRORS, "MESHVIZ_ENCRYPTION_KEY is not set (DEBUG off)"),
}
CLUSTER_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    403: OpenApiResponse(ERRORS, "the cluster refused (RBAC): kind forbidden"),
    502: OpenApiResponse(ERRORS, "the cluster is unreachable or answered garbage"),
    504: OpenApiResponse(ERRORS, "the cluster did not answer in time"),
}


# --------------------------------------------------------------------------
# serializers
# --------------------------------------------------------------------------


def _namespace(value: str) -> str:
    if not NAMESPACE_RE.match(value):
        raise serializers.ValidationError(f"not a Kubernetes namespace name: {value!r}")
    return value


def _pod(value: str) -> str:
    if not POD_RE.match(value):
        raise serializers.ValidationError(f"not a Kubernetes pod name: {value!r}")
    return value


class ClusterCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    in_cluster = serializers.BooleanField(
        default=False, help_text="use meshviz's own service account instead of a kubeconfig"
    )
    kubeconfig = EvidenceField(
        required=False, help_text="the kubeconfig (text or an uploaded file); stored encrypted, never shown again"
    )
    context = serializers.CharField(required=False, allow_blank=True, default="", max_length=253)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_config = bool((attrs.get("kubeconfig") or "").strip())
        if attrs["in_cluster"] and has_config:
            raise serializers.ValidationError({"kubeconfig": "give a kubeconfig or in_cluster=true, not both"})
        if not attrs["in_cluster"] and not has_config:
            raise serializers.ValidationError({"kubeconfig": "required unless in_cluster is true"})
        if attrs["in_cluster"] and attrs["context"]:
            raise serializers.ValidationError({"context": "an in-cluster connection has no kubeconfig context"})
        return attrs


class ClusterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    page = serializers.URLField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Cluster.Kind.choices)
    context = serializers.CharField()
    contexts = serializers.ListField(child=serializers.CharField())
    capabilities = serializers.DictField(child=serializers.BooleanField())
    checked = serializers.DateTimeField(allow_null=True)
    check_error = serializers.DictField(allow_null=True)
    created = serializers.DateTimeField()


class CollectionCreateSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(help_text="id of one of your clusters")
    namespace = serializers.CharField(max_length=63)
    pod = serializers.CharField(max_length=253)

    def validate_namespace(self, value: str) -> str:
        return _namespace(value)

    def validate_pod(self, value: str) -> str:
        return _pod(value)


class AnalysisLinkSerializer(serializers.Serializer):
    slug = serializers.CharField()
    permalink = serializers.URLField()
    url = serializers.URLField(allow_null=True)
    state = serializers.CharField()
    summary = serializers.CharField()


class CollectionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    page = serializers.URLField()
    state = serializers.ChoiceField(choices=CollectionJob.State.choices)
    cluster = serializers.DictField()
    namespace = serializers.CharField()
    pod = serializers.CharField()
    attempts = serializers.IntegerField()
    steps = serializers.ListField(child=serializers.DictField(), help_text="[{step, state, detail, at}] in order")
    error = serializers.DictField(allow_null=True, help_text="{kind, step, message, retryable}")
    reconstructed = serializers.BooleanField(help_text="the evidence was reconstructed, not captured")
    provenance = serializers.CharField(help_text="'captured' or 'reconstructed, not captured' once done")
    notes = serializers.ListField(child=serializers.CharField())
    analysis = AnalysisLinkSerializer(allow_null=True)
    previous_analysis = AnalysisLinkSerializer(allow_null=True)
    diff = serializers.URLField(allow_null=True, help_text="the diff page against the previous analysis")
    verdict_changes = serializers.ListField(child=serializers.DictField(), allow_null=True)
    watched_pod = serializers.IntegerField(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    finished = serializers.DateTimeField(allow_null=True)


class WatchedPodCreateSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(help_text="id of one of your clusters")
    namespace = serializers.CharField(max_length=63)
    pod = serializers.CharField(max_length=253)
    interval_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60)
    enabled = serializers.BooleanField(default=True)

    def validate_namespace(self, value: str) -> str:
        return _namespace(value)

    def validate_pod(self, value: str) -> str:
        return _pod(value)


class WatchedPodUpdateSerializer(serializers.Serializer):
    interval_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)
    enabled = serializers.BooleanField(required=False)
    verdict_changed = serializers.BooleanField(required=False, help_text="false acknowledges a flagged change")


class WatchedPodSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    cluster = serializers.DictField()
    namespace = serializers.CharField()
    pod = serializers.CharField()
    interval_minutes = serializers.IntegerField()
    enabled = serializers.BooleanField()
    last_collected = serializers.DateTimeField(allow_null=True)
    verdict_changed = serializers.BooleanField()
    last_change = serializers.DictField(allow_null=True)
    last_change_at = serializers.DateTimeField(allow_null=True)
    latest_collection = serializers.DictField(allow_null=True)


# --------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------


def represent_cluster(cluster: Cluster, request: Request) -> dict[str, Any]:
    return {
        "id": cluster.pk,
        "url": request.build_absolute_uri(f"/api/v1/clusters/{cluster.pk}/"),
        "page": request.build_absolute_uri(f"/clusters/{cluster.pk}/"),
        "name": cluster.name,
        "kind": cluster.kind,
        "context": cluster.context,
        "contexts": list(cluster.contexts or []),
        "capabilities": dict(cluster.capabilities or {}),
        "checked": cluster.checked,
        "check_error": cluster.check_error,
        "created": cluster.created,
    }


def _analysis_link(analysis: Analysis | None, request: Request) -> dict[str, Any] | None:
    if analysis is None:
        return None
    permalink = request.build_absolute_uri(analysis.permalink_path)
    return {
        "slug": analysis.slug,
        "permalink": permalink,
        "url": request.build_absolute_uri(f"/api/v1/analyses/{analysis.slug}/"),
        "state": analysis.state,
        "summary": analyses.summary_line(analysis, permalink),
    }


def provenance(job: CollectionJob) -> str:
    if job.state != CollectionJob.State.DONE:
        return ""
    return "reconstructed, not captured" if job.reconstructed else "captured"


def represent_collection(job: CollectionJob, request: Request) -> dict[str, Any]:
    diff = job.diff_path
    return {
        "id": job.pk,
        "url": request.build_absolute_uri(f"/api/v1/collections/{job.pk}/"),
        "page": request.build_absolute_uri(job.page_path),
        "state": job.state,
        "cluster": {"id": job.cluster_id, "name": job.cluster.name},
        "namespace": job.namespace,
        "pod": job.pod,
        "attempts": job.attempts,
        "steps": job.step_list(),
        "error": job.error,
        "reconstructed": job.reconstructed,
        "provenance": provenance(job),
        "notes": list(job.notes or []),
        "analysis": _analysis_link(job.analysis, request),
        "previous_analysis": _analysis_link(job.previous_analysis, request),
        "diff": request.build_absolute_uri(diff) if diff else None,
        "verdict_changes": job.verdict_changes,
        "watched_pod": job.watched_id,
        "created": job.created,
        "updated": job.updated,
        "finished": job.finished,
    }


def represent_watched(watched: WatchedPod, request: Request) -> dict[str, Any]:
    latest = watched.collections.select_related("cluster", "analysis", "previous_analysis").order_by("-created").first()
    return {
        "id": watched.pk,
        "url": request.build_absolute_uri(f"/api/v1/watched-pods/{watched.pk}/"),
        "cluster": {"id": watched.cluster_id, "name": watched.cluster.name},
        "namespace": watched.namespace,
        "pod": watched.pod,
        "interval_minutes": watched.interval_minutes,
        "enabled": watched.enabled,
        "last_collected": watched.last_collected,
        "verdict_changed": watched.verdict_changed,
        "last_change": watched.last_change,
        "last_change_at": watched.last_change_at,
        "latest_collection": represent_collection(latest, request) if latest else None,
    }


# --------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------


class OwnedViewSet(viewsets.GenericViewSet):
    """Only the caller's own objects exist for them; everything else is a 404."""

    permission_classes = [permissions.IsAuthenticated]
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]
    noun = "object"

    def get_exception_handler(self) -> Any:
        return clusters_exception_handler

    def get_queryset(self) -> QuerySet[Any]:
        model = self.queryset.model
        return model.objects.filter(owner=self.request.user)  # type: ignore[no-any-return]

    def owned_cluster(self, pk: int) -> Cluster:
        cluster = Cluster.objects.filter(owner=self.request.user, pk=pk).first()
        if cluster is None:
            raise exceptions.NotFound(f"no cluster {pk} (or it is not yours)")
        return cluster

    def validated(self, serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
        """The request body checked by `serializer_class` (a 400 naming each bad field otherwise)."""
        ser = serializer_class(data=request.data)
        ser.is_valid(raise_exception=True)
        return ser.validated_data  # type: ignore[no-any-return]


class ClusterViewSet(mixins.DestroyModelMixin, OwnedViewSet):
    """Cluster connections: in-cluster (meshviz's service account) or an uploaded kubeconfig (encrypted)."""

    queryset = Cluster.objects.all()
    serializer_class = ClusterSerializer
    noun = "cluster"

    @extend_schema(responses={200: ClusterSerializer(many=True), 401: ERROR_RESPONSES[401]})
    def list(self, request: Request) -> Response:
        return Response([represent_cluster(c, request) for c in self.get_queryset()])

    @extend_schema(
        request={"application/json": ClusterCreateSerializer, "multipart/form-data": ClusterCreateSerializer},
        responses={201: ClusterSerializer, **ERROR_RESPONSES},
        summary="Add a cluster: upload a kubeconfig (stored encrypted) or use meshviz's service account",
    )
    def create(self, request: Request) -> Response:
        data = self.validated(ClusterCreateSerializer, request)
        if Cluster.objects.filter(owner=request.user, name=data["name"]).exists():
            raise exceptions.ValidationError({"name": f"you already have a cluster named {data['name']!r}"})
        cluster = services.create_cluster(
            owner=request.user,
            name=data["name"],
            in_cluster=data["in_cluster"],
            kubeconfig=data.get("kubeconfig") or "",
            context=data["context"],
            check=False,
        )
        # What the connection may do is checked by a worker (no Kubernetes call in a web request): poll `checked`.
        queue_check(cluster)
        audit.record(request.user, "cluster.create", f"cluster {cluster.name}", kind=cluster.kind)
        return Response(represent_cluster(cluster, request), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ClusterSerializer, **ERROR_RESPONSES})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(represent_cluster(self.get_object(), request))

    @extend_schema(responses={204: None, **ERROR_RESPONSES}, summary="Forget a cluster (and its kubeconfig)")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cluster = self.get_object()
        audit.record(request.user, "cluster.delete", f"cluster {cluster.name}")
        return super().destroy(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={200: ClusterSerializer, **ERROR_RESPONSES},
        summary="Refresh what the connection may do (capabilities); a failed check is stored in check_error",
    )
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        cluster = self.get_object()
        queue_check(cluster)
        return Response(represent_cluster(cluster, request), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={
            200: inline_serializer(
                "Namespaces",
                {
                    "cluster": serializers.IntegerField(),
                    "namespaces": serializers.ListField(child=serializers.CharField()),
                },
            ),
            **CLUSTER_ERROR_RESPONSES,
        },
        summary="The cluster's namespaces",
    )
    @action(detail=True, methods=["get"])
    def namespaces(self, request: Request, pk: str | None = None) -> Response:
        cluster = self.get_object()
        return Response({"cluster": cluster.pk, "namespaces": services.namespaces(cluster)})

    def _pods(self, request: Request, namespace: str | None) -> Response:
        cluster = self.get_object()
        if not namespace:
            raise exceptions.ValidationError({"namespace": "required (?namespace=NAME)"})
        if not NAMESPACE_RE.match(namespace):
            raise exceptions.ValidationError({"namespace": f"not a Kubernetes namespace name: {namespace!r}"})
        raw = request.query_params.get("sidecar_only", "true").lower()
        if raw not in ("true", "false", "1", "0"):
            raise exceptions.ValidationError({"sidecar_only": f"expected true or false, got {raw!r}"})
        sidecar_only = raw in ("true", "1")
        return Response(
            {
                "cluster": cluster.pk,
                "namespace": namespace,
                "sidecar_only": sidecar_only,
                "pods": services.pods(cluster, namespace, sidecar_only=sidecar_only),
            }
        )

    PODS_RESPONSE = inline_serializer(
        "Pods",
        {
            "cluster": serializers.IntegerField(),
            "namespace": serializers.CharField(),
            "sidecar_only": serializers.BooleanField(),
            "pods": serializers.ListField(
                child=serializers.DictField(),
                help_text="{name, namespace, pod_ip, node, phase, ready, has_sidecar, interception_mode, istio_version}",
            ),
        },
    )

    @extend_schema(
        parameters=[
            OpenApiParameter("namespace", str, OpenApiParameter.QUERY, required=True),
            OpenApiParameter("sidecar_only", bool, OpenApiParameter.QUERY, default=True),
        ],
        responses={200: PODS_RESPONSE, **CLUSTER_ERROR_RESPONSES},
        summary="The pods of a namespace (by default only those with an Istio sidecar)",
    )
    @action(detail=True, methods=["get"])
    def pods(self, request: Request, pk: str | None = None) -> Response:
        return self._pods(request, request.query_params.get("namespace"))

    @extend_schema(
        parameters=[
            OpenApiParameter("namespace", str, OpenApiParameter.PATH),
            OpenApiParameter("sidecar_only", bool, OpenApiParameter.QUERY, default=True),
        ],
        responses={200: PODS_RESPONSE, **CLUSTER_ERROR_RESPONSES},
        summary="The pods of a namespace (by default only those with an Istio sidecar)",
    )
    @action(detail=True, methods=["get"], url_path=r"namespaces/(?P<namespace>[^/.]+)/pods", url_name="namespace-pods")
    def namespace_pods(self, request: Request, pk: str | None = None, namespace: str | None = None) -> Response:
        return self._pods(request, namespace)


class CollectionViewSet(OwnedViewSet):
    """Collections: `POST {cluster, namespace, pod}` queues one (202); poll it for steps, state and the analysis."""

    queryset = CollectionJob.objects.all()
    serializer_class = CollectionSerializer
    noun = "collection"

    def get_queryset(self) -> QuerySet[Any]:
        return (
            CollectionJob.objects.filter(owner=self.request.user)
            .select_related("cluster", "analysis", "previous_analysis")
            .order_by("-created")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("cluster", int, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("namespace", str, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("pod", str, OpenApiParameter.QUERY, required=False),
        ],
        responses={200: CollectionSerializer(many=True), 401: ERROR_RESPONSES[401]},
        summary="Your collections, newest first (at most 100)",
    )
    def list(self, request: Request) -> Response:
        qs = self.get_queryset()
        for field in ("namespace", "pod"):
            if request.query_params.get(field):
                qs = qs.filter(**{field: request.query_params[field]})
        raw = request.query_params.get("cluster")
        if raw:
            if not raw.isdigit():
                raise exceptions.ValidationError({"cluster": f"expected a cluster id, got {raw!r}"})
            qs = qs.filter(cluster_id=int(raw))
        return Response([represent_collection(j, request) for j in qs[:100]])

    @extend_schema(
        request=CollectionCreateSerializer,
        responses={202: CollectionSerializer, **ERROR_RESPONSES},
        summary="Collect a pod's evidence through the Kubernetes API, then analyse it (asynchronous)",
    )
    def create(self, request: Request) -> Response:
        data = self.validated(CollectionCreateSerializer, request)
        cluster = self.owned_cluster(data["cluster"])
        job = services.start_collection(
            owner=request.user, cluster=cluster, namespace=data["namespace"], pod=data["pod"]
        )
        return self._accepted(job.pk, request)

    @extend_schema(responses={200: CollectionSerializer, **ERROR_RESPONSES})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        if job.verdict_changes is None and job.previous_analysis_id is not None:
            steps.compare_with_previous(job)
        return Response(represent_collection(job, request))

    @extend_schema(
        request=None,
        responses={202: CollectionSerializer, **ERROR_RESPONSES},
        summary="Collect the same pod again into a new analysis (linked to this one's for a diff)",
    )
    @action(detail=True, methods=["post"])
    def recollect(self, request: Request, pk: str | None = None) -> Response:
        old = self.get_object()
        job = services.start_collection(owner=request.user, cluster=old.cluster, namespace=old.namespace, pod=old.pod)
        return self._accepted(job.pk, request)

    def _accepted(self, pk: int, request: Request) -> Response:
        # re-read: in the embedded (eager) mode the collection already ran when the transaction committed
        job = self.get_queryset().get(pk=pk)
        return Response(represent_collection(job, request), status=status.HTTP_202_ACCEPTED)


class WatchedPodViewSet(mixins.DestroyModelMixin, OwnedViewSet):
    """Pods re-collected on a schedule (Celery beat); a verdict that changes between collections is flagged."""

    queryset = WatchedPod.objects.all()
    serializer_class = WatchedPodSerializer
    noun = "watched pod"

    def get_queryset(self) -> QuerySet[Any]:
        return WatchedPod.objects.filter(owner=self.request.user).select_related("cluster")

    @extend_schema(responses={200: WatchedPodSerializer(many=True), 401: ERROR_RESPONSES[401]})
    def list(self, request: Request) -> Response:
        return Response([represent_watched(w, request) for w in self.get_queryset()])

    @extend_schema(
        request=WatchedPodCreateSerializer,
        responses={201: WatchedPodSerializer, **ERROR_RESPONSES},
        summary="Watch a pod: re-collect it every interval_minutes and flag verdict changes",
    )
    def create(self, request: Request) -> Response:
        data = self.validated(WatchedPodCreateSerializer, request)
        cluster = self.owned_cluster(data["cluster"])
        watched, created = WatchedPod.objects.get_or_create(
            owner=request.user,
            cluster=cluster,
            namespace=data["namespace"],
            pod=data["pod"],
            defaults={"interval_minutes": data["interval_minutes"], "enabled": data["enabled"]},
        )
        if not created:
            raise exceptions.ValidationError(
                {
                    "pod": f"you already watch {data['namespace']}/{data['pod']} on this cluster (watched pod {watched.pk})"
                }
            )
        return Response(represent_watched(watched, request), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: WatchedPodSerializer, **ERROR_RESPONSES})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        watched = self.get_object()
        for job in watched.collections.filter(verdict_changes__isnull=True, previous_analysis__isnull=False):
            steps.compare_with_previous(job)
        watched.refresh_from_db()
        return Response(represent_watched(watched, request))

    @extend_schema(
        request=WatchedPodUpdateSerializer,
        responses={200: WatchedPodSerializer, **ERROR_RESPONSES},
        summary="Change the interval, pause (enabled=false), or acknowledge a change (verdict_changed=false)",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        watched = self.get_object()
        data = self.validated(WatchedPodUpdateSerializer, request)
        if data.get("verdict_changed") is True:
            raise exceptions.ValidationError({"verdict_changed": "only false (acknowledge) can be set"})
        for field in ("interval_minutes", "enabled", "verdict_changed"):
            if field in data:
                setattr(watched, field, data[field])
        watched.save()
        return Response(represent_watched(watched, request))

    @extend_schema(responses={204: None, **ERROR_RESPONSES}, summary="Stop watching a pod")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)


def register(router: BaseRouter) -> None:
    """Add /clusters/, /collections/ and /watched-pods/ to the API router (meshviz/urls.py)."""
    router.register("clusters", ClusterViewSet, basename="cluster")
    router.register("collections", CollectionViewSet, basename="collection")
    router.register("watched-pods", WatchedPodViewSet, basename="watched-pod")
