"""The REST API's one error shape, `{"errors": [{"source", "line", "column", "text", "message"}]}`, for every viewset.

Every failure is a 4xx (or a 503 while the database is away) with the offending source named; never a bare 500.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from . import services


class EvidenceTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, source: str, size: int | None = None, message: str = "") -> None:
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        got = f" ({size} bytes)" if size is not None else ""
        self.source = source
        super().__init__(message or f"{source} is larger than the {limit}-byte limit (MESHVIZ_MAX_UPLOAD_BYTES){got}")


class EvidenceInvalid(exceptions.APIException):
    """Evidence the engine cannot parse: carries the engine's errors with line and column."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_evidence"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("invalid evidence")


def _flatten(detail: Any, source: str) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        out: list[dict[str, Any]] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = source
            elif isinstance(key, int) or str(key).isdigit():
                name = f"{source}[{key}]"
            else:
                name = f"{source}.{key}" if source else str(key)
            out += _flatten(value, name)
        return out
    if isinstance(detail, list):
        out = []
        for i, value in enumerate(detail):
            out += _flatten(value, f"{source}[{i}]" if isinstance(value, dict | list) else source)
        return out
    return [services.error(source or "request", str(detail))]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DatabaseOperationalError | DatabaseInterfaceError):
        # The database is briefly unavailable (restarting, unreachable): nothing was stored, try again shortly.
        response = Response(
            {"errors": [services.error("request", "the database is unavailable; nothing was stored, try again")]},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, RequestDataTooBig):
        exc = EvidenceTooLarge("the request body")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("no analysis with that slug (or it is not shared with you)")
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, EvidenceInvalid):
        return Response({"errors": exc.errors}, status=exc.status_code)
    if isinstance(exc, EvidenceTooLarge):
        return Response({"errors": [services.error(exc.source, str(exc.detail))]}, status=exc.status_code)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"errors": _flatten(exc.detail, "")}
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = {"errors": [services.error("request", str(detail))]}
    return response
