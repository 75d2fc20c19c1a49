"""API token authentication: knox's, without its sweep of the owner's other tokens.

Knox looks at every token of the user on every request, to delete those past their expiry. This
node makes tokens without an expiry (``services.api_token_create``, ``REST_KNOX['TOKEN_TTL']``
None), so the sweep found nothing and cost a query per request. The token presented is still
checked exactly as knox does: its digest (compared in constant time), its own expiry (an expired
one is deleted and refused, a renewable one renewed), its user active.

The token and its user are read in one plain SQL statement (the token's key joined to its
user), where knox's ORM query (``filter`` + ``select_related``) cost more to build than the rest
of a trivial API request's view: the rows read and the checks made are the same.
"""

from __future__ import annotations

import binascii
from functools import cache
from hmac import compare_digest
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db import connections, models, router
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


class _Join(NamedTuple):
    """How a token is read with its user: the statement, the attribute names of each model's
    columns in it, those columns as ORM expressions (for their converters)."""

    token_model: type[models.Model]
    user_model: type[models.Model]
    select: str
    token_names: list[str]
    user_names: list[str]
    expressions: list[Any]
    user_field: Any  # the token's foreign key: it caches the user, as select_related does


@cache
def _join() -> _Join:
    token_model, user_model = get_token_model(), get_user_model()
    token_meta, user_meta = token_model._meta, user_model._meta
    token_fields, user_fields = token_meta.concrete_fields, user_meta.concrete_fields
    user_field = token_meta.get_field("user")
    columns = [f't."{field.column}"' for field in token_fields]
    columns += [f'u."{field.column}"' for field in user_fields]
    select = (
        f"SELECT {', '.join(columns)}"  # noqa: S608 - the models' own names
        f' FROM "{token_meta.db_table}" t JOIN "{user_meta.db_table}" u'
        f' ON u."{user_meta.pk.column}" = t."{user_field.column}" WHERE t."token_key" = %s'
    )
    expressions = [field.get_col(token_meta.db_table) for field in token_fields]
    expressions += [field.get_col(user_meta.db_table) for field in user_fields]
    return _Join(
        token_model,
        user_model,
        select,
        [field.attname for field in token_fields],
        [field.attname for field in user_fields],
        expressions,
        user_field,
    )


def _tokens_with_users(key: str) -> list[models.Model]:
    """The tokens whose key is ``key``, each with its ``user`` set (one statement; a token
    without a user is not found, as knox skips it)."""
    join = _join()
    alias = router.db_for_read(join.token_model)  # the user is read there too (the join)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(join.select, [key])
        found = cursor.fetchall()
    if not found:
        return []
    # The converters (dates from SQLite's text, booleans from integers), once per connection.
    converters = plain_reads.converters_of(connection, "token with its user", join.expressions)
    tokens, split = [], len(join.token_names)
    for row in found:
        values = plain_reads.converted(row, converters, connection)
        token = join.token_model.from_db(alias, join.token_names, values[:split])
        user = join.user_model.from_db(alias, join.user_names, values[split:])
        join.user_field.set_cached_value(token, user)
        tokens.append(token)
    return tokens


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        # knox's own loop, over the same rows: the tokens with this key, each with its user.
        msg = _("Invalid token.")
        token = token.decode("utf-8")
        for auth_token in _tokens_with_users(token[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
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
