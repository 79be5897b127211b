"""Content-Security-Policy on every response.

Pages: scripts, styles, images and connections from meshviz itself only; no inline script (every script is a static
file), no plugins, no framing, forms post only to meshviz.  SVG diagrams are documents of their own when opened
directly: they get `default-src 'none'`, so nothing in one can run or load anything.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        policy = SVG_POLICY if content_type.startswith("image/svg") else PAGE_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response
