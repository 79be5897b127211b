"""An analysis: one pod's evidence as submitted, the connections to simulate, and the engine's results."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

#: Version of the shape of `Analysis.results`. Stored with every result so an old permalink still renders;
#: bump it when the shape or the engine's meaning changes and results should be recomputed.
ENGINE_VERSION = "1"

#: 22 random bytes: 176 bits, 30 URL-safe characters.
SLUG_BYTES = 22


def new_slug() -> str:
    return secrets.token_urlsafe(SLUG_BYTES)


class Analysis(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    # Public identifier (permalinks, API); never the database id.
    slug = models.CharField(max_length=64, unique=True, default=new_slug, editable=False)

    class Origin(models.TextChoices):
        UPLOAD = "upload", "uploaded"
        EXAMPLE = "example", "bundled example"
        WHATIF = "whatif", "what-if copy"
        CAPTURED = "captured", "captured from the pod"
        RECONSTRUCTED = "reconstructed", "reconstructed, not captured"

    # Who may see it (meshviz.analyses.access): the owner, members of the teams it is shared with, and
    # anyone when `public` (read-only). An analysis whose owner was deleted is visible only if public.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
    )
    teams = models.ManyToManyField("accounts.Team", blank=True, related_name="analyses")
    public = models.BooleanField(default=False, help_text="anyone with the permalink may read it")
    # Where the evidence came from, with notes (e.g. why it was reconstructed rather than captured).
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.UPLOAD)
    origin_notes = models.JSONField(default=list, blank=True)
    # The analysis this one was derived from (a what-if copy, a re-collection of the same pod).
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derivatives"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    # --- evidence, as submitted (empty = not given) ---
    iptables = models.TextField()
    ip_rule = models.TextField(blank=True, default="")
    ip_route = models.TextField(blank=True, default="")
    ip6tables = models.TextField(blank=True, default="")
    ip6_rule = models.TextField(blank=True, default="")
    ip6_route = models.TextField(blank=True, default="")
    addr = models.TextField(blank=True, default="", help_text="`ip -o addr` output")
    nftables = models.TextField(blank=True, default="", help_text="`nft list ruleset` output")
    sysctl = models.TextField(blank=True, default="")
    # Stored redacted (meshviz.engine.envoy.redact): secrets never reach the database.
    envoy_config_dump = models.TextField(blank=True, default="")
    envoy_redactions = models.PositiveIntegerField(default=0)

    # --- pod metadata ---
    pod_ip = models.GenericIPAddressField()
    pod_name = models.CharField(max_length=253, blank=True, default="")
    namespace = models.CharField(max_length=63, blank=True, default="")
    # Derived from the iptables rules: REDIRECT or TPROXY.
    interception_mode = models.CharField(max_length=16, blank=True, default="")
    # Linux uids and gids are 32-bit unsigned (0 to 4294967294): stored as 64-bit so every valid one fits.
    proxy_uid = models.PositiveBigIntegerField(null=True, blank=True)
    proxy_gid = models.PositiveBigIntegerField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    app_ports = models.JSONField(default=list, blank=True)

    # [{"direction": "inbound", "client": "IP:PORT", "port": N}
    #  | {"direction": "outbound", "dst": "IP:PORT", "app_uid": N, "app_gid": N}]
    connections = models.JSONField(default=list, blank=True)
    # Bumped whenever the inputs change (e.g. a connection is added); results carry the revision they answer.
    revision = models.PositiveIntegerField(default=1)

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True, default="")
    parse_warnings = models.JSONField(default=list, blank=True)
    # {"engine_version", "revision", "stories", "comparison", "fix", "summary"}; kept while a re-run is under way.
    results = models.JSONField(null=True, blank=True)
    engine_version = models.CharField(max_length=16, blank=True, default="")

    # --- delivery (meshviz.analyses.tasks): nothing is lost when the broker or a worker is down ---
    # When the broker accepted the task for the current state (null: not yet; the re-dispatcher in beat sends it).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # Set by the worker running it, refreshed every few seconds; the reaper requeues a `running` analysis whose
    # heartbeat stopped (its worker died).
    heartbeat = models.DateTimeField(null=True, blank=True)
    # Runs started for the current request; past MESHVIZ_TASK_MAX_ATTEMPTS the analysis fails with the reason.
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-created",)
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return f"analysis {self.slug} ({self.state})"

    @property
    def permalink_path(self) -> str:
        return f"/a/{self.slug}/"

    def results_are_current(self) -> bool:
        r = self.results
        if not isinstance(r, dict):
            return False
        return r.get("engine_version") == ENGINE_VERSION and r.get("revision") == self.revision
