"""Writes that concern the node itself: its owner, the claim token, API tokens, the master secret.

Services are the only writers (views, commands and the API call them); arguments are keyword-only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import nacl.utils
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from knox.models import AuthToken

from apps.core import identity
from apps.core.models import ClaimToken, Node

DEFAULT_OWNER_USERNAME = "owner"


class NodeSetupError(Exception):
    """A setup step that cannot be done in the node's present state; the message says why."""


@dataclass(frozen=True)
class ClaimResult:
    user: AbstractBaseUser
    # The recovery phrase, when this claim is the moment to show it (it is shown only once).
    recovery_phrase: str | None


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _node_locked() -> Node:
    Node.objects.get_or_create(pk=Node.SINGLETON_PK)
    return Node.objects.select_for_update().get(pk=Node.SINGLETON_PK)


def node_needs_claim() -> bool:
    """True until the owner has a password to log in with."""
    node = Node.objects.select_related("owner").filter(pk=Node.SINGLETON_PK).first()
    return node is None or node.owner is None or not node.owner.has_usable_password()


def claim_token_issue() -> str:
    """A fresh one-time claim token; any earlier one stops working."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        ClaimToken.objects.all().delete()
        ClaimToken.objects.create(token_hash=_token_hash(token))
    return token


def claim_token_valid(*, token: str) -> bool:
    return bool(token) and ClaimToken.objects.filter(token_hash=_token_hash(token)).exists()


def _owner_build(*, username: str) -> AbstractBaseUser:
    """An unsaved owner account (staff and superuser: the owner runs the admin too)."""
    user = get_user_model()(username=username, is_staff=True, is_superuser=True)
    user.set_unusable_password()
    return user


def _master_secret_ensure(*, create: bool = True) -> None:
    # A secret may already exist without an owner (a claim that failed after writing it, or a
    # restore): it is the party's, so it is kept, never replaced. A mirror never holds one, and
    # a node joining another device of its person gets that person's (``create=False``).
    if not create or settings.SEREUS.mirror:
        return
    if not identity.master_secret_exists(_data_dir()):
        identity.master_secret_create(_data_dir(), nacl.utils.random(identity.SECRET_SIZE))


def owner_ensure(*, username: str = DEFAULT_OWNER_USERNAME) -> AbstractBaseUser:
    """The owner account, created (without a password) with a new master secret if none exists.

    The headless path: scripts get an owner without opening the claim URL. The owner can still
    claim the node in a browser later to set a password and see the recovery phrase.
    """
    with transaction.atomic():
        node = _node_locked()
        if node.owner is not None:
            return node.owner
        user = _owner_build(username=username)
        user.full_clean()
        _master_secret_ensure()
        user.save()
        node.owner = user
        node.recovery_phrase_shown = False
        node.save()
        return node.owner


def owner_claim(
    *,
    token: str,
    username: str,
    password: str,
    passphrase: str | None = None,
    joining: bool = False,
) -> ClaimResult:
    """Redeem the claim token: set the owner's username and password, return the phrase once.
    ``joining``: this node is another device of a person who has one already (a device link
    brings their secret), so no secret is made and no phrase shown here."""
    with transaction.atomic():
        deleted, _ = ClaimToken.objects.filter(token_hash=_token_hash(token)).delete()
        if not deleted:
            raise NodeSetupError(
                "This claim link is not valid (it was used already, or the node was restarted "
                "and printed a new one)."
            )
        node = _node_locked()
        user = node.owner
        if user is not None and user.has_usable_password():
            raise NodeSetupError("This node already has an owner. Log in instead.")
        if user is None:
            user = _owner_build(username=username)
        user.username = username
        user.set_password(password)
        user.full_clean()
        _master_secret_ensure(create=not joining)
        user.save()

        phrase = None
        if not node.recovery_phrase_shown and identity.master_secret_exists(_data_dir()):
            secret = identity.master_secret_load(_data_dir(), passphrase=passphrase)
            phrase = identity.recovery_phrase_from_secret(secret)
            node.recovery_phrase_shown = True
        node.owner = user
        node.save()
        # Sealing rewrites a file: last, so a failure before it leaves the file as it was.
        if (
            passphrase
            and identity.master_secret_exists(_data_dir())
            and not identity.master_secret_is_sealed(_data_dir())
        ):
            identity.master_secret_reseal(
                _data_dir(),
                old_passphrase=None,
                new_passphrase=passphrase,
                cost=settings.SEREUS_PWHASH_COST,
            )
    return ClaimResult(user=user, recovery_phrase=phrase)


def recovery_phrase_reveal(*, passphrase: str | None = None) -> str:
    """Show the phrase of a headlessly created owner, once."""
    with transaction.atomic():
        node = _node_locked()
        if node.recovery_phrase_shown:
            raise NodeSetupError(
                "The recovery phrase was shown once already and is not shown again. If you lost "
                "it, create a new party and move your threads to it."
            )
        phrase = identity.recovery_phrase_from_secret(
            identity.master_secret_load(_data_dir(), passphrase=passphrase)
        )
        node.recovery_phrase_shown = True
        node.save()
    return phrase


def master_passphrase_set(*, old_passphrase: str | None, new_passphrase: str | None) -> None:
    """Seal the master secret with a passphrase, change it, or (new=None) remove it."""
    identity.master_secret_reseal(
        _data_dir(),
        old_passphrase=old_passphrase,
        new_passphrase=new_passphrase,
        cost=settings.SEREUS_PWHASH_COST,
    )


def node_restore(*, phrase: str, username: str = DEFAULT_OWNER_USERNAME) -> AbstractBaseUser:
    """Make this empty node a device of the party whose recovery phrase is given."""
    secret = identity.recovery_phrase_to_secret(phrase)
    with transaction.atomic():
        node = _node_locked()
        if node.owner is not None:
            raise NodeSetupError("this node already has an owner; restore needs an empty data dir")
        if identity.master_secret_exists(_data_dir()):
            raise NodeSetupError(
                "this node already has a master secret; restore needs an empty data dir"
            )
        user = _owner_build(username=username)
        user.full_clean()
        identity.master_secret_create(_data_dir(), secret)
        user.save()
        node.owner = user
        # The person typed the phrase in: they have it.
        node.recovery_phrase_shown = True
        node.save()
        return node.owner


def api_token_create(*, user: AbstractBaseUser) -> str:
    """A new API token for ``Authorization: Token <token>``; only its digest is stored."""
    _instance, token = AuthToken.objects.create(user=user, expiry=None)
    return token


def api_tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def sessions_clear_expired() -> None:
    """Delete expired web sessions, so a long-running node's database does not keep them."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
