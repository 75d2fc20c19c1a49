"""Content types and permissions put back after each transactional test's flush, from a copy.

A transactional test ends with Django's ``flush``, which empties every table and then sends
``post_migrate`` so that ``contenttypes`` and ``auth`` make their rows again: 70-100 ms of
queries per test on a quiet machine, 0.3 s at the suite's load, for 114 content types and 456
permissions that never change within a run (about 740 transactional tests). Here those rows are
copied once, after the test database is made by the real receivers, and written back in two
bulk inserts with the same ids: what a test sees is the same rows, not a stand-in.

Any other database (or a run before the copy exists) still gets the real receivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate

AUTH_UID = "django.contrib.auth.management.create_permissions"

_copy: tuple[list[ContentType], list[Permission]] | None = None


def _put_back(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if using != DEFAULT_DB_ALIAS or _copy is None:
        # The signal names the app config ``app_config`` too: the receivers take it from there.
        create_contenttypes(sender=sender, using=using, **kwargs)
        create_permissions(sender=sender, using=using, **kwargs)
        return
    if sender.label != "contenttypes":
        return  # once per flush: the signal is sent for every app
    types, permissions = _copy
    ContentType.objects.using(using).bulk_create(types, ignore_conflicts=True)
    Permission.objects.using(using).bulk_create(permissions, ignore_conflicts=True)


def rows_kept(django_db_blocker: Any) -> Iterator[None]:
    """For the session fixture ``django_db_setup`` (tests/conftest.py), once the test
    database is made."""
    global _copy
    with django_db_blocker.unblock():
        _copy = (
            [
                ContentType(pk=t.pk, app_label=t.app_label, model=t.model)
                for t in ContentType.objects.all()
            ],
            [
                Permission(
                    pk=q.pk, name=q.name, content_type_id=q.content_type_id, codename=q.codename
                )
                for q in Permission.objects.all()
            ],
        )
    post_migrate.disconnect(create_contenttypes)
    post_migrate.disconnect(dispatch_uid=AUTH_UID)
    post_migrate.connect(_put_back, dispatch_uid="tests-fixed-rows")
    try:
        yield
    finally:
        post_migrate.disconnect(dispatch_uid="tests-fixed-rows")
        post_migrate.connect(create_contenttypes)
        post_migrate.connect(create_permissions, dispatch_uid=AUTH_UID)
        _copy = None
