"""A node served on its owner's domain (SEREUS_DOMAIN) over HTTPS by a reverse proxy.

The proxy terminates TLS and forwards to 127.0.0.1; it must set X-Forwarded-Proto (and strip any
client-sent copy), which is why SECURE_PROXY_SSL_HEADER is trusted here and nowhere else.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATA_DIR, SEREUS

if not SEREUS.domain:
    raise ImproperlyConfigured(
        "production settings need SEREUS_DOMAIN (the domain this node is served on over HTTPS)"
    )

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
# /healthz is probed by the proxy over plain HTTP on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 31_536_000
# Covers only names below SEREUS_DOMAIN itself, never its siblings.
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = [
    # W021 asks for HSTS preload. Preloading is a request to browser vendors that is slow to undo
    # and covers the whole registrable domain: the owner decides that, not the node software.
    "security.W021",
]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# __Host- cookies are bound to this exact origin over HTTPS (no Domain, Path=/, Secure).
SESSION_COOKIE_NAME = "__Host-sereus_session"
CSRF_COOKIE_NAME = "__Host-sereus_csrf"

STATIC_ROOT = DATA_DIR / "static"  # python manage.py collectstatic fills it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False
