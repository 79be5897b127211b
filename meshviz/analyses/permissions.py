"""DRF permission shared by the API views over analyses (meshviz.analyses.api, meshviz.web.explorer_api)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class ReadPublicOrAuthenticated(permissions.BasePermission):
    """Reading an analysis may be anonymous (a public permalink); everything else needs a user.

    Which analysis a user may read or change is decided in `get_object` (meshviz.analyses.access).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS and getattr(view, "action", None) not in ("list", "sharing"):
            return True
        return bool(request.user and request.user.is_authenticated)
