"""What Home shows of a medical record: what waits for this member (a provider's access that
ends soon or has ended; for the patient, access they gave that ends soon), the newest entry
("Dr. Lee: Blood pressure 120/80 mmHg"), and the sentence of the Medical card."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.threads.pages import Latest
from apps.medical import display, selectors
from apps.medical.fhir import TYPES
from apps.medical.policy import PROVIDER

SOON = timedelta(days=7)


def _days(until: datetime, now: datetime) -> str:
    days = max(0, (until - now).days)
    return "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"


def waiting(thread: Thread, *, now: datetime | None = None) -> list[str]:
    """A few words per thing that waits for this member in the record."""
    now = now or timezone.now()
    said: list[str] = []
    if thread.role == PROVIDER:
        grant = selectors.grant_of(thread, thread.member_id)
        if grant is not None and grant.status == "active" and grant.end is not None:
            if grant.end <= now:
                said.append("your access has ended")
            elif grant.end - now <= SOON:
                said.append(f"your access ends {_days(grant.end, now)}")
    elif thread.role == OWNER:
        for grant in selectors.grants(thread):
            if grant.status == "active" and grant.end is not None and now < grant.end <= now + SOON:
                said.append(f"{grant.name}'s access ends {_days(grant.end, now)}")
    return said


def latest(thread: Thread) -> Latest | None:
    """The newest entry of the overview's kinds, with who wrote it."""
    view = selectors.overview(thread)
    entries = [*view.problems, *view.allergies, *view.medications, *view.results]
    # The newest by its clinical date, then who wrote its latest version and when (the ops).
    dated = [e for e in entries if e.date]
    if not dated:
        return None
    newest = max(dated, key=lambda e: e.date)
    versions = selectors.provenance(thread, newest.type, newest.fhir_id)
    if not versions:
        return None
    who, at = versions[-1].name, versions[-1].at
    what = display.title(newest)
    if newest.type == "Observation":
        reading = display.value_words(newest.resource)
        what = f"{what} {reading}".strip()
    kind = TYPES[newest.type].label
    return Latest(f"{who[:1].upper()}{who[1:]}: {kind} {what}"[:80], at)


def card_text() -> str:
    """The Medical card's sentence on Home: the records this node holds, in words."""
    records = selectors.records()
    mine = sum(1 for t in records if t.role == OWNER)
    others = len(records) - mine
    if not records:
        return "Keep your medical record on your own devices and share it with your doctors."
    parts = ["your record" if mine == 1 else f"{mine} records you keep"] if mine else []
    if others:
        parts.append(f"{others} record{'s' if others != 1 else ''} shared with you")
    return f"{' and '.join(parts).capitalize()}."
