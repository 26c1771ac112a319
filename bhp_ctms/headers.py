"""Security headers on every response, errors and static files included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.response import Response
from pyramid.tweens import INGRESS

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

STATIC_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

HSTS = "max-age=63072000; includeSubDomains"


def security_headers_tween_factory(
    handler: Callable[[Any], Response], registry: Any
) -> Callable[[Any], Response]:
    hsts = registry.settings["bhp_ctms"].hsts

    def security_headers_tween(request: Any) -> Response:
        response = handler(request)
        response.headers.update(STATIC_HEADERS)
        if hsts:
            response.headers["Strict-Transport-Security"] = HSTS
        # Pages may show clinical data: never keep them in a shared or browser cache.
        if not request.path_info.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return security_headers_tween


def includeme(config: Any) -> None:
    # Outermost, so that error responses from any tween below carry the headers too.
    config.add_tween("bhp_ctms.headers.security_headers_tween_factory", under=INGRESS)
