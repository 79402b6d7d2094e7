"""HTTP protections the framework leaves to the site: a CSP on HTML pages, unreadable bodies.

The policy is one fixed string (no nonces: every page loads its CSS and scripts from
/static/), so the middleware builds it once and adds one header to HTML answers only;
the JSON API's hot path pays a dictionary lookup. Django 6.0 ships its own CSP
middleware: this one is the few lines it takes until the upgrade.
"""

from django.conf import settings

from retail.exceptions import json_error, payload_too_large

# Everything from this site only: no CDN, no inline script or style, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_IDENTITY_ENCODINGS = frozenset({"", "identity"})


class ContentSecurityPolicyMiddleware:
    """Add SPEC §3.8's Content-Security-Policy (no remote origin) to every HTML answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class RequestBodyGuardMiddleware:
    """Refuse bodies the API cannot read before any view: compressed (415), too large (413)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.max_bytes = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def __call__(self, request):
        meta = request.META
        encoding = meta.get("HTTP_CONTENT_ENCODING")
        if encoding is not None and encoding.strip().lower() not in _IDENTITY_ENCODINGS:
            return json_error(
                415, "unsupported_media_type", "Send the body without a Content-Encoding."
            )
        length = meta.get("CONTENT_LENGTH")
        if length and self.max_bytes is not None and length.isdigit():
            if int(length) > self.max_bytes:
                return payload_too_large(self.max_bytes)
        return self.get_response(request)
