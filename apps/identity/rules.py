"""The identity app's rules (ADR 26), which every replica enforces on every row of its ordered
tables, in the thread's order (``apps.core.thread.ordered``). Each is a pure function of the view
(the ordered tables as they stand just before the row), the row change and its author's
standing there: no clock, no network, nothing of this node. A refusal is a reason in plain words.

- a shared profile field is its author's own copy, at the id that follows from the field's
  name, whose proof (leaf, commitment, binding) checks for its author; one profile per member;
- kinds, settings and trusted authorities are the managers' (owner, admins); settings form a
  chain (``seq`` one above the last), so concurrent changes refuse the one ordered second;
- a claim is made by its subject, of a kind in use, well formed; only its subject withdraws it;
- an attestation is a witness's (never the subject's) word over the claim as it stands, at the
  id that follows from witness and claim, with an endorsement that verifies and says exactly
  what the columns say; a retraction takes back one's own attestation, for good;
- a challenge names a claim, a won challenge, or nobody (a duel), the defendant that follows,
  and judges or a poll that leave out the parties and the claim's witnesses; the defendant
  accepts a judged one; each judge judges once; the outcome, once per challenge, is what the
  judges' majority or the closed poll decided.

Member keys in columns are 64 hex digits; a row's author is known from its id's tag only, so
"this member is that row's author" is decided by comparing tags (``rowid.member_tag``).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import DELETE, UPSERT, RowChange
from apps.core.thread.policy import ADMIN, default_policy
from apps.core.thread.rowid import member_tag, row_tag
from apps.identity import formats
from apps.identity.models import (
    MAX_DESCRIPTION,
    MAX_EVIDENCE,
    MAX_LABEL,
    MAX_NOTE,
    MAX_PLACE,
    MAX_TITLE,
)
from apps.identity.policy import (
    ACCEPT,
    ATTESTATION,
    AUTHORITY,
    CHALLENGE,
    CLAIM,
    JUDGEMENT,
    KIND,
    OUTCOME,
    RETRACTION,
    SETTING,
    SHARED,
)
from apps.identity.rules_challenges import (
    POLL_OPTIONS,
    accept_rule,
    challenge_rule,
    is_member,
    is_uuid,
    judgement_rule,
    made_by,
    outcome_rule,
    poll_winner,
    tag_of,
    text_ok,
    written_once,
)

__all__ = [
    "ADMIN_RANK",
    "DEFAULT_FLAG_AFTER",
    "DEFAULT_WITNESSES",
    "POLL_OPTIONS",
    "poll_winner",
    "settings_in_force",
    "validators",
]

ADMIN_RANK = default_policy().rank(ADMIN)  # owners and admins manage the thread's settings
DEFAULT_WITNESSES = 2
DEFAULT_FLAG_AFTER = 2
MOST_SETTING = 50  # witnesses needed, and flag_after: 1 to 50
VERDICTS = ("witnessed", "disputed")
MAX_FILE_NAME, MAX_MIME = 200, 100
MAX_FILE_SIZE = 1 << 40  # a sanity bound; the services refuse big files long before
CHUNK_HEX = 64  # one chunk's hash (``apps.core.blobs``), hex

_SLUG = re.compile(r"[a-z0-9-]{1,40}\Z")  # a kind's name
_FIELD = re.compile(r"[a-z0-9_-]{1,40}\Z")  # a profile field's name (birth_date, x-shoe-size)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*/[A-Za-z0-9][A-Za-z0-9.+-]*\Z")
_HEX = re.compile(r"[0-9a-f]*\Z")
_EVIDENCE_KEYS = frozenset({"name", "mime", "size", "key", "chunks"})

# Refusals other modules (services, pages, tests) name.
NOT_MANAGER = "only the thread's owner or an admin changes its achievement settings"
SETTINGS_MOVED = "the settings changed meanwhile: look at them again and retry"
OWN_CLAIM = "you cannot attest your own claim"


# -- small readers ------------------------------------------------------------------------------


def _whole(value: Any) -> bool:
    return type(value) is int  # not a bool, not a float


def _merged(view: View, change: RowChange) -> tuple[Mapping[str, Any] | None, dict[str, Any]]:
    """The row as it stands and as it would stand after the change."""
    current = view.get(change.table, change.pk)
    return current, {**(current or {}), **change.cols}


def _changed(current: Mapping[str, Any], cols: Mapping[str, Any]) -> set[str]:
    """The columns a change sets to another value than the row has (booleans may come as 0/1,
    which compare equal to False/True)."""
    return {column for column, value in cols.items() if current.get(column) != value}


def _manager(author: Author) -> bool:
    return author.rank >= ADMIN_RANK


def _kind(view: View, slug: Any) -> Mapping[str, Any] | None:
    """The kind with this slug (at most one: the rule refuses a second)."""
    if type(slug) is not str or not _SLUG.match(slug):
        return None
    found = view.rows(KIND, slug=slug)
    return found[0] if found else None


def settings_in_force(view: View) -> tuple[int, int]:
    """(witnesses needed, flag_after) of the setting with the highest ``seq``, else the
    defaults. Only settings this rule accepted are in the view, so the chain has no gaps."""
    rows = view.rows(SETTING)
    if not rows:
        return DEFAULT_WITNESSES, DEFAULT_FLAG_AFTER
    last = max(rows, key=lambda row: row["seq"])
    return int(last["witnesses"]), int(last["flag_after"])


def _highest_seq(view: View) -> int:
    return max((int(row["seq"]) for row in view.rows(SETTING)), default=0)


# -- shared profile fields ----------------------------------------------------------------------


def shared_rule(view: View, change: RowChange, author: Author) -> str | None:
    current, row = _merged(view, change)
    if change.action == DELETE:
        if current is None:
            return "the shared field was already taken back"
        if not made_by(change.pk, author.member):
            return "a member takes back only their own shared fields"
        return None
    name = row.get("name")
    if type(name) is not str or not _FIELD.match(name):
        return "a shared field has a name of 1 to 40 lowercase letters, digits, dashes or _"
    if change.pk != formats.shared_id(author.member, name):
        return "a member shares a field only as their own copy, under the id its name gives"
    problem = formats.shared_problem(row, author.member)
    if problem:
        return problem
    for other in view.rows(SHARED):
        mine = other["pk"] != change.pk and made_by(other["pk"], author.member)
        if mine and other.get("profile") != row.get("profile"):
            return "all of a member's shared fields come from one profile"
    return None


# -- the thread's settings: kinds, the settings chain, trusted authorities ----------------------


def kind_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action == DELETE:
        return "a kind is retired, never deleted"
    if not _manager(author):
        return NOT_MANAGER
    current, row = _merged(view, change)
    if current is not None:
        changed = _changed(current, change.cols)
        if changed - {"label", "retired"}:
            return "only a kind's label and whether it is retired change"
    slug = row.get("slug")
    if type(slug) is not str or not _SLUG.match(slug):
        return "a kind's name is 1 to 40 lowercase letters, digits or dashes"
    if not text_ok(row.get("label"), MAX_LABEL, required=True):
        return f"a kind has a label of 1 to {MAX_LABEL} characters"
    if current is None:
        if row.get("retired"):
            return "a new kind starts in use"
        if view.rows(KIND, slug=slug):
            return "the thread already has a kind of that name"
    return None


def setting_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "settings are never changed in place: write the next ones"
    if not _manager(author):
        return NOT_MANAGER
    cols = change.cols
    seq, witnesses, flag_after = cols.get("seq"), cols.get("witnesses"), cols.get("flag_after")
    if not _whole(seq) or seq != _highest_seq(view) + 1:
        return SETTINGS_MOVED
    if not _whole(witnesses) or not 1 <= witnesses <= MOST_SETTING:
        return f"the witnesses a claim needs are 1 to {MOST_SETTING}"
    if not _whole(flag_after) or not 1 <= flag_after <= MOST_SETTING:
        return f"a witness is flagged after 1 to {MOST_SETTING} retracted or overturned words"
    return None


def authority_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action == DELETE:
        return "a trusted authority is revoked, never deleted"
    if not _manager(author):
        return NOT_MANAGER
    current, row = _merged(view, change)
    if current is not None:
        changed = _changed(current, change.cols)
        if changed - {"revoked"} or not row.get("revoked"):
            return "a trusted authority only changes by being revoked, for good"
        return None
    if _kind(view, row.get("kind")) is None:
        return "the thread has no such kind"
    if not is_member(row.get("member")):
        return "a trusted authority is a member of the thread"
    if row.get("revoked"):
        return "a new trusted authority starts trusted"
    return None


# -- claims, attestations, retractions ----------------------------------------------------------


def _date_problem(value: Any) -> str | None:
    if value == "":
        return None
    if type(value) is not str or not _DATE.match(value):
        return "the event's date is a day written YYYY-MM-DD"
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return "the event's date is not a day of the calendar"
    return None


def _file_problem(item: Any) -> str | None:
    if type(item) is not dict or set(item) != _EVIDENCE_KEYS:
        return "each evidence file is described by its name, type, size, key and chunks"
    if not text_ok(item["name"], MAX_FILE_NAME, required=True):
        return f"an evidence file has a name of 1 to {MAX_FILE_NAME} characters"
    if type(item["mime"]) is not str or len(item["mime"]) > MAX_MIME:
        return "an evidence file's type is not readable"
    if not _MIME.match(item["mime"]):
        return "an evidence file's type is not readable"
    if not _whole(item["size"]) or not 0 <= item["size"] <= MAX_FILE_SIZE:
        return "an evidence file's size is not readable"
    if not is_member(item["key"]):
        return "an evidence file's key is not readable"
    chunks = item["chunks"]
    if type(chunks) is not str or not chunks or len(chunks) % CHUNK_HEX or not _HEX.match(chunks):
        return "an evidence file's chunks are not readable"
    return None


def _evidence_problem(value: Any) -> str | None:
    if type(value) is not str or len(value) > 100_000:
        return "a claim's evidence is a list of files"
    try:
        files = json.loads(value)
    except ValueError:
        return "a claim's evidence is not readable"
    if type(files) is not list:
        return "a claim's evidence is a list of files"
    if len(files) > MAX_EVIDENCE:
        return f"a claim carries at most {MAX_EVIDENCE} evidence files"
    for item in files:
        problem = _file_problem(item)
        if problem:
            return problem
    return None


def _new_claim(view: View, change: RowChange, author: Author) -> str | None:
    cols = change.cols
    if not made_by(change.pk, author.member):
        return "a claim is made by its subject, the member its id names"
    subject = cols.get("subject") or ""  # a column the model may gain (REQUEST-H2 1)
    if subject and subject != author.member.hex():
        return "a claim names its own author as its subject"
    kind = _kind(view, cols.get("kind"))
    if kind is None:
        return "the thread has no such kind of achievement"
    if kind.get("retired"):
        return "that kind of achievement is retired: claims of it are closed"
    if not text_ok(cols.get("title"), MAX_TITLE, required=True):
        return f"a claim has a title of 1 to {MAX_TITLE} characters"
    if not text_ok(cols.get("description", ""), MAX_DESCRIPTION, required=False):
        return f"a claim's description holds at most {MAX_DESCRIPTION} characters"
    if not text_ok(cols.get("place", ""), MAX_PLACE, required=False):
        return f"a claim's place holds at most {MAX_PLACE} characters"
    problem = _date_problem(cols.get("event_date", ""))
    problem = problem or _evidence_problem(cols.get("evidence", "[]"))
    if problem:
        return problem
    if cols.get("withdrawn"):
        return "a new claim is not withdrawn"
    return None


def claim_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action == DELETE:
        return "a claim is never deleted: its subject may withdraw it"
    current = view.get(CLAIM, change.pk)
    if current is None:
        return _new_claim(view, change, author)
    changed = _changed(current, change.cols)
    if changed - {"withdrawn"}:
        return "a claim is never edited: withdraw it and make a new one"
    if not changed:
        return None  # the same values again change nothing
    if not made_by(change.pk, author.member):
        return "only a claim's subject withdraws it"
    if not change.cols["withdrawn"]:
        return "a withdrawn claim stays withdrawn"
    return None


def _subject(claim: str, row: Mapping[str, Any], jws: str) -> bytes | None:
    """The claim's subject's member key: the row's ``subject`` column where the model has it,
    else the did:key the endorsement names whose tag is the claim id's (the id carries only the
    subject's tag, and no row in the view holds every member's key)."""
    given = row.get("subject")
    if is_member(given):
        return bytes.fromhex(given) if tag_of(given) == row_tag(claim) else None
    for did in _dids(jws):
        try:
            public = formats.did_public(did)
        except ValueError:
            continue
        if member_tag(public) == row_tag(claim):
            return public
    return None


def _dids(jws: str) -> list[str]:
    """Every did:key string in a compact JWS's payload (not verified here)."""
    parts = jws.split(".") if len(jws) < 100_000 else []
    if len(parts) != 3:
        return []
    try:
        text = formats.b64url_decode(parts[1]).decode()
    except (ValueError, UnicodeDecodeError):
        return []
    return sorted(set(re.findall(r"did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}", text)))


def attestation_rule(view: View, change: RowChange, author: Author) -> str | None:
    again = change.action == UPSERT and view.get(ATTESTATION, change.pk) is not None
    if again and view.rows(RETRACTION, attestation=change.pk):
        return "you retracted your word on this claim: it cannot be given again"
    if written_once(view, change):
        return "an attestation is given once: retract it instead of changing it"
    cols = change.cols
    claim = cols.get("claim")
    row = view.get(CLAIM, claim) if is_uuid(claim) else None
    if row is None:
        return "there is no such claim"
    if change.pk != formats.attestation_id(author.member, claim):
        return "a witness gives one word per claim, under the id that follows from both"
    if made_by(claim, author.member):
        return OWN_CLAIM
    if row.get("withdrawn"):
        return "the claim was withdrawn"
    verdict, note, jws = cols.get("verdict"), cols.get("note", ""), cols.get("jws")
    if verdict not in VERDICTS:
        return "a witness says the claim is witnessed or disputed"
    if not text_ok(note, MAX_NOTE, required=False):
        return f"a witness's note holds at most {MAX_NOTE} characters"
    digest = formats.claim_digest(claim, row)
    if cols.get("digest") != digest.hex():
        return "the attestation is over another version of the claim"
    if type(jws) is not str:
        return "an attestation carries the witness's signed endorsement"
    subject = _subject(claim, row, jws)
    if subject is None:
        return "the endorsement does not name the claim's subject"
    return formats.endorsement_problem(
        jws,
        digest=digest,
        subject=subject,
        witness=author.member,
        verdict=verdict,
        note=note,
        kind=row.get("kind", ""),
        title=row.get("title", ""),
    )


def retraction_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "a retraction is final: it is never changed or undone"
    cols = change.cols
    attestation = cols.get("attestation")
    if not is_uuid(attestation) or view.get(ATTESTATION, attestation) is None:
        return "there is no such attestation"
    if not made_by(attestation, author.member):
        return "a witness retracts only their own word"
    if change.pk != formats.retraction_id(author.member, attestation):
        return "a witness retracts a word once, under the id that follows from it"
    if not text_ok(cols.get("reason", ""), MAX_NOTE, required=False):
        return f"a retraction's reason holds at most {MAX_NOTE} characters"
    return None


def validators() -> dict[str, Validator]:
    """The identity app's ordered tables and their rules (``validators_register``)."""
    rules: dict[str, Callable[[View, RowChange, Author], str | None]] = {
        SHARED: shared_rule,
        KIND: kind_rule,
        SETTING: setting_rule,
        AUTHORITY: authority_rule,
        CLAIM: claim_rule,
        ATTESTATION: attestation_rule,
        RETRACTION: retraction_rule,
        CHALLENGE: challenge_rule,
        ACCEPT: accept_rule,
        JUDGEMENT: judgement_rule,
        OUTCOME: outcome_rule,
    }
    return rules
