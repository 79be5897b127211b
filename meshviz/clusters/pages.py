"""Pages for live collection: clusters (add, capabilities, check), namespaces -> sidecar pods, collecting a pod
(steps shown live by frontend/static/js/clusters.js polling the collections API), and watched pods.

Every page requires login and shows only the user's own objects: another user's is a 404.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from meshviz.accounts import audit
from meshviz.collect.errors import CollectError

from . import connect, crypto, services, steps
from .api import NAMESPACE_RE, POD_RE, provenance
from .models import Cluster, CollectionJob, WatchedPod
from .tasks import queue_check

logger = logging.getLogger(__name__)


class ClusterForm(forms.Form):
    name = forms.CharField(max_length=100)
    in_cluster = forms.BooleanField(required=False, label="Use meshviz's own service account (in-cluster)")
    kubeconfig = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))
    kubeconfig_file = forms.FileField(required=False, label="or upload the kubeconfig file")
    context = forms.CharField(required=False, max_length=253, help_text="empty: the kubeconfig's current-context")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = data.get("kubeconfig") or ""
        upload = data.get("kubeconfig_file")
        if upload is not None:
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("kubeconfig_file", "not UTF-8 text: upload the kubeconfig YAML")
                return data
        data["kubeconfig_text"] = text
        if data.get("in_cluster") and text.strip():
            self.add_error("kubeconfig", "give a kubeconfig or choose in-cluster, not both")
        elif not data.get("in_cluster") and not text.strip():
            self.add_error("kubeconfig", "paste or upload a kubeconfig, or choose in-cluster")
        return data


def _owner(request: HttpRequest) -> Any:
    """The logged-in user (every view here is login_required)."""
    return request.user


def _cluster(request: HttpRequest, pk: int) -> Cluster:
    cluster = Cluster.objects.filter(owner=_owner(request), pk=pk).first()
    if cluster is None:
        raise Http404("no such cluster")
    return cluster


def _job(request: HttpRequest, pk: int) -> CollectionJob:
    job = (
        CollectionJob.objects.filter(owner=_owner(request), pk=pk)
        .select_related("cluster", "analysis", "previous_analysis")
        .first()
    )
    if job is None:
        raise Http404("no such collection")
    return job


@login_required
@require_http_methods(["GET", "POST"])
def clusters_page(request: HttpRequest) -> HttpResponse:
    form = ClusterForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            if Cluster.objects.filter(owner=_owner(request), name=data["name"]).exists():
                form.add_error("name", f"you already have a cluster named {data['name']!r}")
            elif (
                data.get("in_cluster")
                and connect.may_use_in_cluster(_owner(request))
                and (why := _in_cluster_unavailable())
            ):
                # shown before anything is saved: a connection that can never work is not stored
                form.add_error(None, why)
            else:
                try:
                    cluster = services.create_cluster(
                        owner=_owner(request),
                        name=data["name"],
                        in_cluster=bool(data.get("in_cluster")),
                        kubeconfig=data["kubeconfig_text"],
                        context=data.get("context") or "",
                        check=False,
                    )
                except connect.InClusterForbidden as exc:
                    form.add_error(None, str(exc))
                except connect.KubeconfigInvalid as exc:
                    form.add_error("kubeconfig", exc.message)
                except (crypto.EncryptionKeyMissing, crypto.EncryptionKeyInvalid) as exc:
                    form.add_error(None, str(exc))
                else:
                    queue_check(cluster)
                    audit.record(_owner(request), "cluster.create", f"cluster {cluster.name}", kind=cluster.kind)
                    return redirect("cluster-page", pk=cluster.pk)
        status = 400
    clusters = Cluster.objects.filter(owner=_owner(request))
    return render(request, "clusters/clusters.html", {"form": form, "clusters": clusters}, status=status)


def _in_cluster_unavailable() -> str:
    """Why meshviz's own service account cannot be used here ('' when it can). Reads only the environment and the
    service account's files: no Kubernetes call in a web request."""
    from meshviz.collect import kube

    try:
        kube.api_client(kubeconfig=None, context=None, in_cluster=True, timeout=1.0)
    except CollectError:
        return (
            "meshviz is not running inside a Kubernetes cluster here, so it has no service account of its own to "
            "use. Upload a kubeconfig instead: the example below has credentials that may only read pods and exec "
            "into them."
        )
    return ""


@login_required
@require_GET
def cluster_page(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    namespaces: list[str] = []
    error: dict[str, Any] | None = None
    pending = False
    try:
        namespaces = services.namespaces(cluster)
    except services.BrowsePending:
        pending = True  # a worker is listing them; the page reloads
    except CollectError as exc:
        error = exc.to_dict()
    capabilities = sorted((cluster.capabilities or {}).items())
    return render(
        request,
        "clusters/cluster.html",
        {
            "cluster": cluster,
            "namespaces": namespaces,
            "error": error,
            "capabilities": capabilities,
            "pending": pending or cluster.checked is None,
        },
    )


@login_required
@require_POST
def check_cluster(request: HttpRequest, pk: int) -> HttpResponse:
    queue_check(_cluster(request, pk))  # a worker checks it: no Kubernetes call in a web request
    messages.info(request, "Checking what the connection may do; reload in a few seconds.")
    return redirect("cluster-page", pk=pk)


@login_required
@require_POST
def delete_cluster(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    audit.record(_owner(request), "cluster.delete", f"cluster {cluster.name}")
    cluster.delete()
    messages.info(request, "The cluster and its kubeconfig were deleted.")
    return redirect("clusters-page")


@login_required
@require_GET
def pods_page(request: HttpRequest, pk: int, namespace: str) -> HttpResponse:
    cluster = _cluster(request, pk)
    if not NAMESPACE_RE.match(namespace):
        raise Http404("not a namespace name")
    show_all = request.GET.get("all") == "1"
    pods: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    pending = False
    try:
        pods = services.pods(cluster, namespace, sidecar_only=not show_all)
    except services.BrowsePending:
        pending = True  # a worker is listing them; the page reloads
    except CollectError as exc:
        error = exc.to_dict()
    watched = set(
        WatchedPod.objects.filter(owner=_owner(request), cluster=cluster, namespace=namespace).values_list(
            "pod", flat=True
        )
    )
    for p in pods:
        p["watched"] = p.get("name") in watched
    return render(
        request,
        "clusters/pods.html",
        {
            "cluster": cluster,
            "namespace": namespace,
            "pods": pods,
            "error": error,
            "show_all": show_all,
            "pending": pending,
        },
    )


def _pod_from_post(request: HttpRequest) -> tuple[str, str]:
    namespace = request.POST.get("namespace", "")
    pod = request.POST.get("pod", "")
    if not NAMESPACE_RE.match(namespace) or not POD_RE.match(pod):
        raise Http404("not a namespace or pod name")
    return namespace, pod


def _refuse_without_key(request: HttpRequest) -> HttpResponse | None:
    try:
        crypto.require_key()
    except (crypto.EncryptionKeyMissing, crypto.EncryptionKeyInvalid) as exc:
        return render(request, "clusters/refused.html", {"reason": str(exc)}, status=503)
    return None


@login_required
@require_POST
def collect_pod(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    namespace, pod = _pod_from_post(request)
    refused = _refuse_without_key(request)
    if refused:
        return refused
    job = services.start_collection(owner=_owner(request), cluster=cluster, namespace=namespace, pod=pod)
    return redirect("collection-page", pk=job.pk)


@login_required
@require_POST
def watch_pod(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    namespace, pod = _pod_from_post(request)
    raw = request.POST.get("interval_minutes", "60")
    interval = int(raw) if raw.isdigit() and 0 < int(raw) <= 7 * 24 * 60 else 60
    WatchedPod.objects.get_or_create(
        owner=_owner(request), cluster=cluster, namespace=namespace, pod=pod, defaults={"interval_minutes": interval}
    )
    messages.info(request, f"Watching {namespace}/{pod}: re-collected every {interval} minutes.")
    return redirect("watched-pods-page")


@login_required
@require_GET
def collection_page(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    if job.verdict_changes is None and job.previous_analysis_id is not None:
        steps.compare_with_previous(job)
    return render(
        request,
        "clusters/collection.html",
        {
            "job": job,
            "provenance": provenance(job),
            "finished": job.state in (CollectionJob.State.DONE, CollectionJob.State.FAILED),
        },
    )


@login_required
@require_POST
def recollect(request: HttpRequest, pk: int) -> HttpResponse:
    old = _job(request, pk)
    refused = _refuse_without_key(request)
    if refused:
        return refused
    job = services.start_collection(owner=_owner(request), cluster=old.cluster, namespace=old.namespace, pod=old.pod)
    return redirect("collection-page", pk=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def watched_pods_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        raw_id = request.POST.get("id", "")
        if not raw_id.isdigit():
            raise Http404("no such watched pod")
        watched = WatchedPod.objects.filter(owner=_owner(request), pk=int(raw_id)).first()
        if watched is None:
            raise Http404("no such watched pod")
        op = request.POST.get("op")
        if op == "delete":
            watched.delete()
        elif op == "acknowledge":
            WatchedPod.objects.filter(pk=watched.pk).update(verdict_changed=False)
        elif op == "toggle":
            WatchedPod.objects.filter(pk=watched.pk).update(enabled=not watched.enabled)
        else:
            raise Http404("unknown operation")
        return redirect("watched-pods-page")
    steps.compare_pending(_owner(request))
    rows = []
    for w in WatchedPod.objects.filter(owner=_owner(request)).select_related("cluster"):
        latest = w.collections.select_related("analysis", "previous_analysis").order_by("-created").first()
        rows.append({"watched": w, "latest": latest})
    return render(request, "clusters/watched.html", {"rows": rows})
