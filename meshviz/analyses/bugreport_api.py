"""`POST /api/v1/bug-reports/`: an `istioctl bug-report` archive -> its sidecar pods, or one analysis per picked pod.

Stateless: without `pods` the answer lists the archive's sidecar pods (namespace, name, mode, version, pod IP,
whether the archive has its config dump); with `pods` (repeated `NAMESPACE/POD`) the same archive is sent again
and one analysis is created per pod (all or none), rules "reconstructed, not captured".
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from meshviz.engine.api import ArchiveError, pod_keys

from . import access, bundles
from .errors import EvidenceInvalid, EvidenceTooLarge, api_exception_handler
from .serializers import ERROR_RESPONSES, represent
from .tasks import enqueue


class BugReportSerializer(serializers.Serializer):
    archive = serializers.FileField(help_text="the istioctl bug-report .tar.gz")
    pods = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="NAMESPACE/POD to analyse"
    )


class BugReportViewSet(viewsets.ViewSet):
    parser_classes = [MultiPartParser]
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    @extend_schema(
        request={"multipart/form-data": BugReportSerializer},
        responses={
            200: inline_serializer("BugReportPods", {"pods": serializers.ListField(child=serializers.DictField())}),
            201: inline_serializer(
                "BugReportAnalyses", {"analyses": serializers.ListField(child=serializers.DictField())}
            ),
            **ERROR_RESPONSES,
        },
        summary="List an istioctl bug-report archive's sidecar pods, or analyse the picked ones",
    )
    def create(self, request: Request) -> Response:
        ser = BugReportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        upload: UploadedFile[bytes] = ser.validated_data["archive"]
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        if upload.size is not None and upload.size > limit:
            raise EvidenceTooLarge("archive", upload.size)
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise EvidenceTooLarge("archive", len(data))
        name = upload.name or "bug-report.tar.gz"
        try:
            picked = pod_keys(ser.validated_data["pods"])
        except ValueError as exc:
            raise serializers.ValidationError({"pods": str(exc)}) from exc
        try:
            if not picked:
                return Response({"pods": bundles.list_bug_report(data, name)})
            with transaction.atomic():
                created, errors = bundles.bug_report_analyses(data, name, picked, owner=access.owner_for(request))
        except ArchiveError as exc:
            raise EvidenceInvalid([bundles.archive_error(exc)]) from exc
        if errors:
            raise EvidenceInvalid(errors)
        for analysis in created:
            enqueue(analysis)
            analysis.refresh_from_db()
        return Response(
            {"analyses": [represent(a, request, full=False) for a in created]}, status=status.HTTP_201_CREATED
        )


__all__ = ["BugReportViewSet"]
