"""Countersigned rows (APPS.md §0): a row that counts only when k of the n parties it names have
signed its content: an escrow released 2-of-3, an achievement with its witnesses, a contract
signed by both sides. The core offers this once, on top of ordered tables (``ordered.py``):

- the **row** names its parties in one column: their member keys (32 bytes each) concatenated,
  one bytes value (``parties_encode``), since a column holds a scalar. The order is the author's;
  a key named twice makes the row name no parties at all (a party cannot count twice).
- its **digest** (``row_digest``) is BLAKE2b-256 of canonical CBOR of the thread id, the table,
  the row's key, the parties and the signed columns' values (an absent column signs as null),
  domain-separated: a signature is for this row's content in this thread, nowhere else. Change
  a signed column, or the parties, and the old signatures stop counting.
- a **signature** is a row of a signature table, judged by ``signature_rule``: ``target`` (the
  row's pk), ``digest``, ``signer`` (member key) and ``sig``. It is refused unless the author
  signs for itself, is a party the row names, signs the row's digest where the signature stands
  in the order, the signature verifies, and the signer has not signed that digest already.
  Signatures are never withdrawn (a delete is refused): k signatures count once they are there.
- ``signatures_enough`` says, for a validator or a view, whether k parties signed the row as it
  stands.

Every check is a pure function of the view and the change, as ordered validators must be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.signing

from apps.core.thread import codec, crypto, rowid
from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.ordered_view import Pk
from apps.core.thread.payloads import UPSERT, RowChange

MEMBER_SIZE = 32
_PERSON = b"sereus-cosign"
_SIGN_TAG = "row-cosign"
SIGNATURE_COLUMNS = ("target", "digest", "signer", "sig")


@dataclass(frozen=True)
class Countersigned:
    """How one table's rows are countersigned. One spec for the rule and the count: they must
    agree on the thread, the columns signed and where the signatures are."""

    thread: bytes
    table: str  # the countersigned rows
    parties: str  # its column naming the parties (``parties_encode``)
    columns: tuple[str, ...]  # its columns the parties sign (besides the parties)
    signatures: str  # the signature table


def parties_encode(members: Iterable[bytes]) -> bytes:
    """The value of a parties column: the member keys, concatenated."""
    keys = list(members)
    if any(len(key) != MEMBER_SIZE for key in keys):
        raise ValueError("a party is a 32-byte member key")
    return b"".join(keys)


def parties_decode(value: Any) -> tuple[bytes, ...]:
    """The parties a column value names; none if the value is not a list of distinct keys."""
    if type(value) is not bytes or not value or len(value) % MEMBER_SIZE:
        return ()
    keys = tuple(value[i : i + MEMBER_SIZE] for i in range(0, len(value), MEMBER_SIZE))
    return keys if len(set(keys)) == len(keys) else ()


def row_digest(
    thread: bytes, table: str, pk: Pk, values: Mapping[str, Any], columns: Sequence[str]
) -> bytes:
    """What the parties sign: the named columns of one row of one thread. Column order does not
    matter (the map is canonical CBOR)."""
    doc = {
        "v": 1,
        "thread": thread,
        "table": table,
        "pk": pk,
        "cols": {column: values.get(column) for column in columns},
    }
    return crypto.blake2b256(codec.encode(doc), person=_PERSON)


def signature_make(member_key: nacl.signing.SigningKey, thread: bytes, digest: bytes) -> bytes:
    return crypto.sign(member_key, _SIGN_TAG, thread, digest)


def signature_check(member_public: bytes, thread: bytes, digest: bytes, sig: bytes) -> bool:
    try:
        crypto.verify(member_public, sig, _SIGN_TAG, thread, digest)
    except crypto.CryptoError:
        return False
    return True


def digest_of(spec: Countersigned, pk: Pk, row: Mapping[str, Any]) -> bytes:
    """The digest of a countersigned row as it stands (its parties always signed too)."""
    return row_digest(spec.thread, spec.table, pk, row, (spec.parties, *spec.columns))


def signature_change(
    spec: Countersigned, member_key: nacl.signing.SigningKey, pk: Pk, row: Mapping[str, Any]
) -> RowChange:
    """The signature row a party writes: its id is the signer's own (``rowid``), one per
    signer and digest, so a second signature of the same content is the same row."""
    signer = bytes(member_key.verify_key)
    digest = digest_of(spec, pk, row)
    sig_pk = rowid.row_id_for(signer, b"cosign" + digest).hex
    cols = {
        "target": pk,
        "digest": digest,
        "signer": signer,
        "sig": signature_make(member_key, spec.thread, digest),
    }
    return RowChange(spec.signatures, sig_pk, UPSERT, cols)


def signature_rule(spec: Countersigned) -> Validator:
    """The validator of ``spec.signatures``."""

    def rule(view: View, change: RowChange, author: Author) -> str | None:
        if change.action != UPSERT or view.get(spec.signatures, change.pk) is not None:
            return "a signature is written once and never withdrawn"
        target, digest, signer, sig = (change.cols.get(name) for name in SIGNATURE_COLUMNS)
        if type(digest) is not bytes or type(signer) is not bytes or type(sig) is not bytes:
            return "a signature names its target, digest, signer and sig"
        if signer != author.member:
            return "a member signs only for itself"
        row = view.get(spec.table, target)
        if row is None:
            return "the signed row does not exist"
        if signer not in parties_decode(row.get(spec.parties)):
            return "the signer is not a party the row names"
        if digest != digest_of(spec, target, row):
            return "the signature is over another version of the row"
        if not signature_check(signer, spec.thread, digest, sig):
            return "the signature does not verify"
        if signer in _signers(view, spec, target, digest, (signer,)):
            return "the party signed this version already"
        return None

    return rule


def _signers(
    view: View, spec: Countersigned, pk: Pk, digest: bytes, parties: Sequence[bytes]
) -> set[bytes]:
    return {
        row["signer"]
        for row in view.rows(spec.signatures, target=pk)
        if row.get("digest") == digest and row.get("signer") in parties
    }


def signers(view: View, spec: Countersigned, pk: Pk) -> frozenset[bytes]:
    """The parties that signed the row as it stands in ``view`` (none if it does not exist)."""
    row = view.get(spec.table, pk)
    if row is None:
        return frozenset()
    parties = parties_decode(row.get(spec.parties))
    return frozenset(_signers(view, spec, pk, digest_of(spec, pk, row), parties))


def signatures_enough(view: View, spec: Countersigned, pk: Pk, k: int) -> bool:
    """Whether at least ``k`` of the parties the row names signed it as it stands. Counts only
    signatures the table's rule accepted (``signature_rule``): they are verified there, once."""
    return len(signers(view, spec, pk)) >= k
