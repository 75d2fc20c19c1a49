"""API token authentication: knox's, without its sweep of the owner's other tokens.

Knox looks at every token of the user on every request, to delete those past their expiry. This
node makes tokens without an expiry (``services.api_token_create``, ``REST_KNOX['TOKEN_TTL']``
None), so the sweep found nothing and cost a query per request. The token presented is still
checked exactly as knox does: its digest, its own expiry (an expired one is deleted and
refused), its user active.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.signals import token_expired


class TokenAuthentication(KnoxTokenAuthentication):
    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class TokenScheme(KnoxTokenScheme):
    """The API schema describes it as knox's token (registered by being defined)."""

    target_class = "apps.core.authentication.TokenAuthentication"
