"""Reads of a thread's achievement rules: the kinds it keeps (with how many claims each has),
the members it trusts for a kind, and the settings in force (k witnesses, flag after n)."""

from __future__ import annotations

from django.db.models import Count

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.identity import standing
from apps.identity.models import Authority, Claim, Kind, Setting
from apps.identity.selector_views import AuthorityView, KindView, SettingsView
from apps.identity.selectors_common import FORMER, alias_of, member_names


def kind_labels(thread: Thread) -> dict[str, str]:
    """Each kind's label (the one in use where a slug was retired and added again)."""
    with thread_context(thread.thread):
        rows = list(Kind.objects.order_by("retired", "id"))
    labels: dict[str, str] = {}
    for row in rows:
        labels.setdefault(row.slug, row.label)
    return labels


def trusted(thread: Thread) -> set[tuple[str, str]]:
    """(kind, member) pairs the thread trusts now."""
    with thread_context(thread.thread):
        return set(Authority.objects.filter(revoked=False).values_list("kind", "member"))


def kinds(thread: Thread, *, counted: bool = True) -> list[KindView]:
    """Every kind the thread has had (in use first), with how many claims each has; not
    ``counted``: the counts left 0 (a form's choices need none, and a big thread's claims are
    not read for them)."""
    with thread_context(thread.thread):
        rows = list(Kind.objects.order_by("id"))
        counts: dict[str, int] = {}
        if counted:
            grouped = Claim.objects.values("kind").annotate(n=Count("id")).order_by()
            counts = {row["kind"]: row["n"] for row in grouped}
    merged: dict[str, KindView] = {}
    for row in rows:
        seen = merged.get(row.slug)
        if seen is None or (seen.retired and not row.retired):
            merged[row.slug] = KindView(row.slug, row.label, row.retired, counts.get(row.slug, 0))
    return sorted(merged.values(), key=lambda k: (k.retired, k.label.casefold(), k.slug))


def authorities(thread: Thread) -> list[AuthorityView]:
    """The members trusted for a kind (revoked ones after, marked)."""
    names, labels = member_names(thread), kind_labels(thread)
    with thread_context(thread.thread):
        rows = list(Authority.objects.order_by("id"))
    merged: dict[tuple[str, str], bool] = {}
    for row in rows:
        key = (row.kind, row.member)
        merged[key] = merged.get(key, True) and row.revoked
    found = [
        AuthorityView(kind, labels.get(kind, kind), member, names.get(member, FORMER), revoked)
        for (kind, member), revoked in merged.items()
    ]
    return sorted(found, key=lambda a: (a.revoked, a.kind_label.casefold(), a.name.casefold()))


def settings(thread: Thread) -> SettingsView:
    from apps.identity.services import is_manager

    current = standing.settings_of(alias_of(thread))
    with thread_context(thread.thread):
        seq = Setting.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return SettingsView(current.witnesses, current.flag_after, seq, is_manager(thread))
