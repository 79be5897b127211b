"""Fixed-window rate limits in the Django cache, for pages (login, anonymous what-if) that DRF's throttles do not
cover.  `hit` counts one request and says how long to wait when the window is full."""

from __future__ import annotations

import hashlib
import logging
import time

from django.core.cache import cache
from django.http import HttpRequest

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
    """Count a request of `ident` in `scope`; None when allowed, else the seconds until the window ends."""
    if not rate:
        return None
    limit, period = parse_rate(rate)
    now = int(time.time())
    window = now - now % period
    digest = hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()[:32]
    key = f"ratelimit:{scope}:{digest}:{window}"
    try:
        cache.add(key, 0, timeout=period + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=period + 5)
            count = 1
    except cache_errors() as exc:
        logger.warning("rate limit %s not enforced: the cache is unavailable (%s)", scope, exc)
        return None
    if count > limit:
        return max(1, window + period - now)
    return None
