"""Cluster connections, collection jobs and watched pods. Each belongs to one user (`owner`); only they see it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Cluster(models.Model):
    """How meshviz reaches a cluster: its own service account (in-cluster) or an uploaded kubeconfig.

    The kubeconfig is stored only as a Fernet token (meshviz.clusters.crypto); it is never shown again,
    never serialised, never logged.
    """

    class Kind(models.TextChoices):
        IN_CLUSTER = "in_cluster", "in-cluster service account"
        KUBECONFIG = "kubeconfig", "uploaded kubeconfig"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clusters")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Fernet token of the kubeconfig (empty for in-cluster); meshviz.clusters.crypto.
    kubeconfig_encrypted = models.TextField(blank=True, default="", editable=False)
    # The kubeconfig context to use (empty: its current-context).
    context = models.CharField(max_length=253, blank=True, default="")
    # The contexts the kubeconfig names (not secret: shown so the user can pick one).
    contexts = models.JSONField(default=list, blank=True)
    # meshviz.collect.kube.capabilities(): {"list_namespaces": true, "exec": false, ...}, from the last check.
    capabilities = models.JSONField(default=dict, blank=True)
    checked = models.DateTimeField(null=True, blank=True)
    # The last check's error (CollectError.to_dict()), or null.
    check_error = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="clusters_cluster_owner_name")]

    def __str__(self) -> str:
        return f"cluster {self.name} ({self.kind})"

    def __repr__(self) -> str:
        # never the kubeconfig, not even its ciphertext
        return f"<Cluster {self.pk} {self.name!r} {self.kind}>"


class CollectionJob(models.Model):
    """One collection of a pod's evidence through the Kubernetes API, then the analysis it feeds."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="collections")
    namespace = models.CharField(max_length=63)
    pod = models.CharField(max_length=253)
    watched = models.ForeignKey(
        "WatchedPod", null=True, blank=True, on_delete=models.SET_NULL, related_name="collections"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # [{"step", "state", "detail", "at"}] in the order the steps started (progress reported by collect_pod).
    steps = models.JSONField(default=list, blank=True)
    # CollectError.to_dict() ({kind, step, message, retryable}), or evidence errors from validation, or null.
    error = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The evidence was partly reconstructed (e.g. from Istio's init-container settings), not captured.
    reconstructed = models.BooleanField(default=False)
    notes = models.JSONField(default=list, blank=True)
    # The analysis created from the complete collection (none until then, none on failure).
    analysis = models.ForeignKey(
        "analyses.Analysis", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The same pod's previous analysis (from an earlier collection), to diff against.
    previous_analysis = models.ForeignKey(
        "analyses.Analysis", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Filled once both analyses are done: [{"connection", "before", "after"}] for every verdict that changed.
    verdict_changes = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"collection {self.pk} of {self.namespace}/{self.pod} ({self.state})"

    @property
    def page_path(self) -> str:
        return f"/collections/{self.pk}/"

    @property
    def diff_path(self) -> str | None:
        if self.analysis is None or self.previous_analysis is None:
            return None
        return f"/diff/{self.previous_analysis.slug}/{self.analysis.slug}/"

    def step_list(self) -> list[dict[str, Any]]:
        return list(self.steps or [])


class WatchedPod(models.Model):
    """A pod re-collected every `interval_minutes` (Celery beat); verdict changes are flagged."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watched_pods")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="watched_pods")
    namespace = models.CharField(max_length=63)
    pod = models.CharField(max_length=253)
    interval_minutes = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    # When the latest scheduled collection started (successful or not): the interval counts from there.
    last_collected = models.DateTimeField(null=True, blank=True)
    # Set when the latest collection's verdicts differ from the previous analysis' (until acknowledged).
    verdict_changed = models.BooleanField(default=False)
    last_change = models.JSONField(null=True, blank=True)
    last_change_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("namespace", "pod")
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "cluster", "namespace", "pod"], name="clusters_watchedpod_owner_pod"
            )
        ]

    def __str__(self) -> str:
        return f"watched {self.namespace}/{self.pod}"


class BrowseResult(models.Model):
    """What a worker found when it listed a cluster's namespaces or a namespace's pods (`tasks.browse`).

    Web requests never talk to a cluster: they show the latest result younger than BROWSE_TTL_SECONDS and queue a
    fresh listing when there is none.  `error` is a CollectError's dict when the listing failed.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="browse_results")
    key = models.CharField(max_length=200)  # "namespaces" or "pods:<namespace>:<sidecar_only>"
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created",)
        indexes = [models.Index(fields=("cluster", "key", "created"))]
