"""Reads of witnesses' standing for pages and the API: each witness with every input of their
standing listed (what they attested, what they retracted, what a challenge overturned), by name.
One witness's page computes that witness's standing only (the same rule over the same rows as
everyone's, narrowed to their attestations), and names only the claims and challenges it lists."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag
from apps.core.threads.context import thread_context
from apps.identity import standing
from apps.identity.models import Attestation, Challenge, Claim
from apps.identity.selector_views import StrikeView, WitnessView
from apps.identity.selectors_common import FORMER, alias_of, member_names


def _member_hex(member: str) -> str | None:
    """A member key as 64 lowercase hex digits, or None when it is not one."""
    member = str(member or "").lower()
    if len(member) != 64:
        return None
    try:
        bytes.fromhex(member)
    except ValueError:
        return None
    return member


def _uuids(values: Iterable[str]) -> list[uuid.UUID]:
    return [uuid.UUID(hex=v) for v in values if v]


def witnesses(thread: Thread, *, member: str | None = None) -> list[WitnessView]:
    """Every member who attested something (or only ``member``), with each input of their
    standing; by name, this member first."""
    alias = alias_of(thread)
    settings = standing.settings_of(alias)
    tags = None
    if member is not None:
        key = _member_hex(member)
        if key is None:
            return []
        tags = [member_tag(bytes.fromhex(key)).hex()]
    found = standing.standing(alias, settings, tags=tags)
    if member is not None:
        found = {w: s for w, s in found.items() if w == member.lower()}
    names, me = member_names(thread), thread.member_id
    # Only the rows the strikes name: a witness's page reads neither every attestation nor
    # every claim's title of the thread.
    retracted = {att for state in found.values() for att in state.retracted}
    with thread_context(thread.thread):
        claim_of = {
            a.hex: c.hex
            for a, c in Attestation.objects.filter(pk__in=_uuids(retracted)).values_list(
                "id", "claim"
            )
        }
        named = set(claim_of.values()) | {
            c for state in found.values() for _a, c, _ch in state.overturned
        }
        titles = {
            pk.hex: title
            for pk, title in Claim.objects.filter(pk__in=_uuids(named)).values_list("id", "title")
        }
        struck_by = {ch for state in found.values() for _a, _c, ch in state.overturned}
        feats = {
            pk.hex: feat
            for pk, feat in Challenge.objects.filter(pk__in=_uuids(struck_by)).values_list(
                "id", "feat"
            )
        }
    views = []
    for witness, state in found.items():
        took_back = []
        for att in state.retracted:
            claim_hex = claim_of.get(att, "")
            took_back.append(StrikeView(att, claim_hex, titles.get(claim_hex, "a claim"), None, ""))
        overturned = [
            StrikeView(att, claim_hex, titles.get(claim_hex, "a claim"), ch, feats.get(ch, ""))
            for att, claim_hex, ch in state.overturned
        ]
        views.append(
            WitnessView(
                member=witness,
                name=names.get(witness, FORMER),
                mine=witness == me,
                attested=state.attested,
                retracted=took_back,
                overturned=overturned,
                strikes=state.strikes,
                flag_after=settings.flag_after,
                flagged=state.flagged,
            )
        )
    views.sort(key=lambda w: (not w.mine, w.name.casefold(), w.member))
    return views


def witness(thread: Thread, member: str) -> WitnessView | None:
    """One member's standing (a member who never attested has a clean one); None when
    ``member`` is not a member key."""
    key = _member_hex(member)
    if key is None:
        return None
    found = witnesses(thread, member=key)
    if found:
        return found[0]
    flag_after = standing.settings_of(alias_of(thread)).flag_after
    names = member_names(thread)
    mine = key == thread.member_id
    return WitnessView(key, names.get(key, FORMER), mine, 0, [], [], 0, flag_after, False)
