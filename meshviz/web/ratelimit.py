"""Sliding-window rate limits in the Django cache, for pages (login, anonymous what-if) that DRF's throttles do not
cover.  `hit` counts one request and says how long to wait when the window is full."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


def cache_errors() -> tuple[type[BaseException], ...]:
    """What the cache raises when its server (Redis) is unreachable: rate limits then fail open, logged, rather
    than turning every request into a 500 while the cache is down."""
    errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is a requirement
        return errors
    return (*errors, RedisError)


_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "10/min" -> (10, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR (behind a proxy, the proxy must set it: meshviz does not trust X-Forwarded-For)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def hit(scope: str, ident: str, rate: str) -> int | None:
    """Count a request of `ident` in `scope`; None when allowed, else the seconds to wait.

    A sliding-window counter: the current window's count plus the previous window's, weighted by how much of it
    still lies within one period of now.  A plain fixed window let a burst straddling a window's end through twice
    over (and made the limit's own test flaky)."""
    if not rate:
        return None
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now) - int(now) % period
    digest = hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()[:32]
    key = f"ratelimit:{scope}:{digest}:{window}"
    previous_key = f"ratelimit:{scope}:{digest}:{window - period}"
    try:
        cache.add(key, 0, timeout=2 * period + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=2 * period + 5)
            count = 1
        previous = int(cache.get(previous_key) or 0)
    except cache_errors() as exc:
        logger.warning("rate limit %s not enforced: the cache is unavailable (%s)", scope, exc)
        return None
    elapsed = (now - window) / period  # 0..1 of the current window gone
    if count + previous * (1.0 - elapsed) > limit:
        # wait until the excess has left the sliding window
        return max(1, int(window + period - now) + 1)
    return None


class PageRateLimitMiddleware:
    """Pages (not /api/, which DRF throttles per key, nor static files or /healthz) are limited per client address
    for anonymous visitors (MESHVIZ_PAGE_ANON_RATE) and per user (MESHVIZ_PAGE_RATE): 429 with Retry-After."""

    EXEMPT = ("/static/", "/api/", "/healthz")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(self.EXEMPT):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                wait = hit("page-user", str(user.pk), settings.MESHVIZ_PAGE_RATE)
            else:
                wait = hit("page-anon", client_address(request), settings.MESHVIZ_PAGE_ANON_RATE)
            if wait is not None:
                response = HttpResponse(
                    f"Too many requests: try again in {wait} seconds.\n", status=429, content_type="text/plain"
                )
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)
