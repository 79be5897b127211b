"""Evidence from where users already have it: the collect.sh script and its page, `istioctl bug-report` uploads.

Thin shells: the script is a static file (`meshviz/collect/collect.sh`); archives are read by the engine
(`meshviz.engine.evidence.bugreport`) through `meshviz.analyses.bundles`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from meshviz.analyses import bundles
from meshviz.analyses.tasks import enqueue
from meshviz.engine.api import ArchiveError, pod_keys

COLLECT_SH = Path(__file__).resolve().parents[1] / "collect" / "collect.sh"
#: how long an uploaded bug-report archive waits for the user to pick pods (seconds)
PICK_SECONDS = 3600


def collect_script_text() -> str:
    return COLLECT_SH.read_text(encoding="utf-8")


@require_GET
def collect_sh(request: HttpRequest) -> HttpResponse:
    """The script itself, as a download (`curl -O .../collect.sh`)."""
    response = HttpResponse(collect_script_text(), content_type="text/x-shellscript; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="collect.sh"'
    return response


@require_GET
def collect_page(request: HttpRequest) -> HttpResponse:
    """What the script does, what it needs, what it writes; the script shown in full."""
    return render(
        request,
        "web/collect.html",
        {"script": collect_script_text(), "script_url": request.build_absolute_uri("/collect.sh")},
    )


class BugReportUploadForm(forms.Form):
    archive = forms.FileField(label="istioctl bug-report archive", help_text="bug-report.tar.gz")


def _cache_key(request: HttpRequest, token: str) -> str:
    return f"meshviz:bug-report:{request.user.pk}:{token}"


@login_required
@require_http_methods(["GET", "POST"])
def new_bug_report(request: HttpRequest) -> HttpResponse:
    """Upload an archive (-> its sidecar pods to pick from), then pick pods (-> one analysis each)."""
    context: dict[str, Any] = {"form": BugReportUploadForm(), "errors": [], "pods": None, "created": []}
    status = 200
    if request.method == "POST" and "token" in request.POST:
        token = request.POST["token"]
        stored = cache.get(_cache_key(request, token)) if token.isalnum() else None
        if stored is None:
            context["errors"] = ["the uploaded archive has expired or is unknown: upload it again"]
            return render(request, "web/bug_report.html", context, status=400)
        data, name = stored
        try:
            picked = pod_keys(request.POST.getlist("pods"))
            if not picked:
                raise ValueError("pick at least one pod")
            with transaction.atomic():
                created, errors = bundles.bug_report_analyses(data, name, picked, owner=request.user)
        except (ValueError, ArchiveError) as exc:
            created, errors = [], [{"message": str(exc)}]
        if errors:
            context["errors"] = [
                e["message"] if not e.get("line") else f"{e['source']}: {e['message']}" for e in errors
            ]
            context["pods"], context["token"] = bundles.list_bug_report(data, name), token
            return render(request, "web/bug_report.html", context, status=400)
        for analysis in created:
            enqueue(analysis)
        context["created"] = created
        return render(request, "web/bug_report.html", context)
    if request.method == "POST":
        form = BugReportUploadForm(request.POST, request.FILES)
        context["form"] = form
        if form.is_valid():
            upload = form.cleaned_data["archive"]
            limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
            data = upload.read(limit + 1)
            if len(data) > limit:
                context["errors"] = [f"the archive is larger than the {limit}-byte limit (MESHVIZ_MAX_UPLOAD_BYTES)"]
                return render(request, "web/bug_report.html", context, status=413)
            name = upload.name or "bug-report.tar.gz"
            try:
                context["pods"] = bundles.list_bug_report(data, name)
            except ArchiveError as exc:
                context["errors"] = [str(exc)]
                return render(request, "web/bug_report.html", context, status=400)
            token = secrets.token_hex(16)
            cache.set(_cache_key(request, token), (data, name), PICK_SECONDS)
            context["token"] = token
            context["archive_name"] = name
        else:
            status = 400
    return render(request, "web/bug_report.html", context, status=status)
