"""API token authentication: knox's, without its sweep of the owner's other tokens.

Knox looks at every token of the user on every request, to delete those past their expiry. This
node makes tokens without an expiry (``services.api_token_create``, ``REST_KNOX['TOKEN_TTL']``
None), so the sweep found nothing and cost a query per request. The token presented is still
checked exactly as knox does: its digest, its own expiry (an expired one is deleted and
refused), its user active.

The token and its user are read with two plain SQL queries (``plain_reads``) instead of the
ORM's ``filter`` and ``select_related``: building those queries cost more than the rest of a
trivial API request's view; the rows read and the checks made are the same.
"""

from __future__ import annotations

import binascii
from hmac import compare_digest

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from knox.signals import token_expired
from rest_framework import exceptions

from apps.core import plain_reads


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        # knox's own loop, over the same rows: the tokens with this key, each with its user.
        msg = _("Invalid token.")
        token = token.decode("utf-8")
        found = plain_reads.rows(
            get_token_model(), '"token_key" = %s', [token[: CONSTANTS.TOKEN_KEY_LENGTH]]
        )
        for auth_token in found:
            auth_token.user = plain_reads.by_pk(get_user_model(), auth_token.user_id)
            if auth_token.user is None or self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(token)
            except (TypeError, binascii.Error):
                raise exceptions.AuthenticationFailed(msg) from None
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed(msg)

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
