"""DRF authentication by API key and per-key throttling.

Bots send `Authorization: Api-Key mvz_...` (or `Bearer mvz_...`). The browser uses its session.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, throttling
from rest_framework.request import Request

from meshviz.web import ratelimit

from .models import ApiKey

logger = logging.getLogger(__name__)

SCHEMES = ("api-key", "bearer")
#: Write `last_used` at most this often per key (seconds), not on every request.
LAST_USED_RESOLUTION = 60


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() not in SCHEMES:
            return None
        value = value.strip()
        if not value or " " in value:
            raise exceptions.AuthenticationFailed("malformed Authorization header: expected 'Api-Key <key>'")
        key = ApiKey.lookup(value)
        if key is None:
            raise exceptions.AuthenticationFailed("unknown or revoked API key")
        now = timezone.now()
        if key.last_used is None or (now - key.last_used).total_seconds() > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used=now)
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 to unauthenticated requests.
        return 'Api-Key realm="meshviz"'


class PerKeyRateThrottle(throttling.SimpleRateThrottle):
    """One bucket per API key; per user for session requests; per client address when anonymous.

    The rate comes from settings.MESHVIZ_API_RATE (e.g. "120/min"), read on every request so it can be
    changed per deployment (and per test).
    """

    scope = "api"

    def get_rate(self) -> str | None:
        rate: str | None = getattr(settings, "MESHVIZ_API_RATE", None) or None
        return rate

    def allow_request(self, request: Request, view: Any) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return bool(super().allow_request(request, view))
        except ratelimit.cache_errors() as exc:
            # The cache (Redis) is down: serve the request unthrottled rather than fail it (logged).
            logger.warning("API throttle not enforced: the cache is unavailable (%s)", exc)
            return True

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return str(self.cache_format % {"scope": self.scope, "ident": ident})
