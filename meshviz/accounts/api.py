"""`GET /api/v1/audit/`: the caller's audit log (meshviz.accounts.audit), newest first."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from . import audit

EVENTS = inline_serializer(
    "AuditEvent",
    many=True,
    fields={
        "when": serializers.DateTimeField(),
        "actor": serializers.CharField(allow_null=True),
        "action": serializers.CharField(help_text="e.g. analysis.share, key.create, cluster.delete, team.join"),
        "subject": serializers.CharField(),
        "details": serializers.DictField(),
    },
)


class AuditLogViewSet(viewsets.ViewSet):
    """Changes to who may see or do what: sharing, API keys, clusters, team memberships, deletions."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: EVENTS}, summary="Your audit log, newest first (at most 200 events)")
    def list(self, request: Request) -> Response:
        events: list[dict[str, Any]] = [
            {
                "when": e.created,
                "actor": e.actor.get_username() if e.actor else None,
                "action": e.action,
                "subject": e.subject,
                "details": e.details,
            }
            for e in audit.events_for(request.user, limit=200)
        ]
        return Response(events)
