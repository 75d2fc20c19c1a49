"""The checklist's rules, which every replica enforces on every row of its ordered tables, in
the thread's order (``apps.core.thread.ordered``). Each is a pure function of the view (the
ordered tables as they stand just before the row), the row change and its author's standing
there: no clock, no network, nothing of this node. A refusal is a reason in plain words.

- an item is added by the member its id names, with some text, unclaimed and not done;
- only who added an item, or an admin, changes its text or list or deletes it;
- a member claims an item only for themself, and only while nobody else holds it; the claimer
  or an admin un-claims it;
- the claimer or an admin marks it done or not done (``done_by`` says who);
- an approval is an admin's signature, for themself, over the item's current digest (text,
  done, claimed_by), once per admin and digest; written once, never withdrawn;
- a close closes one list (its ``scope``), once; only the owner or an admin closes.

An item counts as approved while ``APPROVALS_NEEDED`` admins' signatures match it as it stands
(``approvers``): change it and the old approvals stop counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nacl.signing import SigningKey

from apps.checklist.models import MAX_LIST, MAX_TEXT
from apps.checklist.policy import APPROVAL, CLOSE, ITEM
from apps.core.thread import countersign
from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import DELETE, UPSERT, RowChange
from apps.core.thread.policy import ADMIN, default_policy
from apps.core.thread.rowid import member_tag, row_id_for, row_tag

# Owners and admins (and any role an app ranks as high) hold the checklist's admin powers. The
# built-in roles' ranks are the same in every policy template this node has.
ADMIN_RANK = default_policy().rank(ADMIN)
APPROVALS_NEEDED = 2
SIGNED = ("text", "done", "claimed_by")
# Where the thread id would go in the digest and signature (``countersign``): a validator is
# not told its thread. Member keys are the thread's own (derived per thread) and the signer
# must be the approval's author, so a signature cannot be carried into another thread.
DOMAIN = b"sereus-checklist"

# Reasons the pages and the API put in other words (``refusals.py``).
ALREADY_CLAIMED = "the item is already claimed by someone else"


def item_digest(pk: str, row: Mapping[str, Any]) -> bytes:
    """What approving admins sign: the item's text, whether it is done and who holds it."""
    values = {
        "text": str(row.get("text") or ""),
        "done": bool(row.get("done")),
        "claimed_by": str(row.get("claimed_by") or ""),
    }
    return countersign.row_digest(DOMAIN, ITEM, pk, values, SIGNED)


def approval_values(member_key: SigningKey, pk: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of the approval an admin gives an item as it stands (``row``). Its id is the
    signer's own and follows from the digest: approving the same content again is the same
    row."""
    signer = bytes(member_key.verify_key)
    digest = item_digest(pk, row)
    return {
        "id": row_id_for(signer, b"approve" + digest).hex,
        "item": pk,
        "digest": digest,
        "signer": signer,
        "sig": countersign.signature_make(member_key, DOMAIN, digest),
    }


def _is_admin(author: Author) -> bool:
    return author.rank >= ADMIN_RANK


def _text_problem(value: Any) -> str | None:
    if type(value) is not str or not value.strip():
        return "an item needs some text"
    if len(value) > MAX_TEXT:
        return f"an item holds at most {MAX_TEXT} characters"
    return None


def _list_problem(value: Any) -> str | None:
    if type(value) is not str or not value.strip() or len(value) > MAX_LIST:
        return f"a list has a name of 1 to {MAX_LIST} characters"
    return None


def item_rule(view: View, change: RowChange, author: Author) -> str | None:
    me, admin = author.member.hex(), _is_admin(author)
    adder = row_tag(change.pk) == member_tag(author.member)
    current = view.get(ITEM, change.pk)
    if change.action == DELETE:
        if current is None:
            return "the item was already deleted"
        if not adder and not admin:
            return "only who added an item or an admin may delete it"
        return None
    cols = change.cols
    if current is None:
        return _new_item(cols, adder)
    changed = {column for column, value in cols.items() if current.get(column) != value}
    if changed & {"text", "list"} and not adder and not admin:
        return "only who added an item or an admin may change its text or list"
    problem = "text" in changed and _text_problem(cols["text"])
    problem = problem or ("list" in changed and _list_problem(cols["list"]))
    if problem:
        return problem
    holder = current.get("claimed_by") or ""
    if "claimed_by" in changed:
        claimer = cols["claimed_by"] or ""
        if claimer:
            if claimer != me:
                return "a member claims an item only for themself"
            if holder and holder != me:
                return ALREADY_CLAIMED
        elif holder != me and not admin:
            return "only who claimed an item or an admin may unclaim it"
    if changed & {"done", "done_by"}:
        claimer = cols.get("claimed_by", holder) or ""
        if claimer != me and not admin:
            return "only who claimed an item or an admin may mark it done or not done"
        done = bool(cols.get("done", current.get("done")))
        done_by = cols.get("done_by", current.get("done_by")) or ""
        if done and done_by != me:
            return "an item marked done names who marked it (done_by)"
        if not done and done_by:
            return "an item not done names nobody as having done it"
    return None


def _new_item(cols: Mapping[str, Any], adder: bool) -> str | None:
    if not adder:
        return "an item is added by the member its id names"
    problem = _text_problem(cols.get("text"))
    if problem:
        return problem
    if "list" in cols and _list_problem(cols["list"]):
        return _list_problem(cols["list"])
    if cols.get("claimed_by"):
        return "a new item starts unclaimed"
    if cols.get("done") or cols.get("done_by"):
        return "a new item starts not done"
    return None


def approvers(view: View, pk: str) -> frozenset[bytes]:
    """The admins whose approvals match the item as it stands in ``view`` (none if it is gone).
    Only approvals this rule accepted are in the view: each was checked once, there."""
    row = view.get(ITEM, pk)
    if row is None:
        return frozenset()
    return signers_of(pk, row, view.rows(APPROVAL, item=pk))


def signers_of(
    pk: str, row: Mapping[str, Any], approvals: Iterable[Mapping[str, Any]]
) -> frozenset[bytes]:
    """The signers among accepted ``approvals`` whose signature is over the item ``pk`` as
    ``row`` has it (the rule and the pages count alike)."""
    digest = item_digest(pk, row)
    return frozenset(
        a["signer"] for a in approvals if a.get("item") == pk and a.get("digest") == digest
    )


def approval_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(APPROVAL, change.pk) is not None:
        return "an approval is given once and never changed or withdrawn"
    item, digest, signer, sig = (change.cols.get(c) for c in ("item", "digest", "signer", "sig"))
    if type(digest) is not bytes or type(signer) is not bytes or type(sig) is not bytes:
        return "an approval names the item, its digest, the signer and the signature"
    if not _is_admin(author):
        return "only an admin may approve an item"
    if signer != author.member:
        return "an admin approves only for themself"
    row = view.get(ITEM, item) if type(item) is str else None
    if row is None:
        return "the approved item does not exist"
    if digest != item_digest(item, row):
        return "the approval is for another version of the item"
    if not countersign.signature_check(signer, DOMAIN, digest, sig):
        return "the approval's signature does not verify"
    if signer in approvers(view, item):
        return "this admin already approved the item as it stands"
    return None


def close_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(CLOSE, change.pk) is not None:
        return "a list is closed once, for good"
    if _list_problem(change.cols.get("scope")):
        return "a close names the list it closes"
    if not _is_admin(author):
        return "only the owner or an admin may close a list"
    return None


def validators() -> dict[str, Validator]:
    """The checklist's ordered tables and their rules (``validators_register``)."""
    return {ITEM: item_rule, APPROVAL: approval_rule, CLOSE: close_rule}
