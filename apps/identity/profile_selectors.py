"""What a thread sees of its members' profiles: the fields each shared into it, only those whose
proof checks here (``formats.shared_problem``: the leaf is in a commitment the profile key
signed, and that key is bound to the member who wrote the row), with the member's name."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.models import Thread
from apps.core.thread.rowid import row_tag
from apps.core.threads.app_kit import app_enabled, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import thread_names
from apps.identity import formats, policy
from apps.identity.models import SharedField
from apps.identity.profile import STANDARD, field_label


@dataclass(frozen=True)
class SharedFieldView:
    member: str  # hex, for links only (never shown)
    member_name: str
    mine: bool
    name: str
    label: str
    value: str

    @property
    def is_photo(self) -> bool:
        return self.name == "photo" and self.value.startswith("data:image/")

    @property
    def links(self) -> list[str]:
        return self.value.splitlines() if self.name == "links" else []


def _order(name: str) -> tuple[int, str]:
    names = list(STANDARD)
    return (names.index(name), "") if name in STANDARD else (len(names), name)


def shared_in(thread: Thread) -> dict[str, list[SharedFieldView]]:
    """member hex -> the fields that member shared into ``thread`` and whose proof checks, in
    the profile's order; members with none are absent."""
    if not app_enabled(thread, policy.APP):
        return {}
    owners = row_owners(thread)
    names = thread_names(thread, me_as="you")
    with thread_context(thread.thread):
        rows = list(SharedField.objects.order_by("id"))
    found: dict[str, list[SharedFieldView]] = {}
    profiles: dict[str, set[str]] = {}
    for row in rows:
        tag = row_tag(row.pk.hex)
        member = owners.get(tag.hex()) if tag else None
        if member is None:
            continue
        key = bytes.fromhex(member)
        columns = {
            "name": row.name,
            "disclosure": row.disclosure,
            "commitment": row.commitment,
            "profile": row.profile,
            "binding": row.binding,
        }
        # The id says which member and field the copy is for: one copy per member and field.
        if row.pk.hex != formats.shared_id(key, row.name):
            continue
        if formats.shared_problem(columns, key) is not None:
            continue
        opened = formats.disclosure_open(row.disclosure)
        if opened is None:
            continue
        profiles.setdefault(member, set()).add(row.profile)
        view = SharedFieldView(
            member=member,
            member_name=names[member],
            mine=member == thread.member_id,
            name=row.name,
            label=field_label(row.name),
            value=opened[2],
        )
        found.setdefault(member, []).append(view)
    # A member's rows name one profile (the rules refuse the others); shown otherwise, they
    # would mix two people's fields under one name.
    for member, keys in profiles.items():
        if len(keys) > 1:
            found.pop(member, None)
    return {m: sorted(v, key=lambda f: _order(f.name)) for m, v in found.items()}
