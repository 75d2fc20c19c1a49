"""What an op's body says, once opened: control actions, epoch keys, row changes.

Every parser here takes an untrusted decoded CBOR value and either returns a typed object or
raises ``PayloadError`` naming the field; nothing else escapes. Limits follow DESIGN §4: at most
10 000 row changes per op, bounded strings everywhere. The control actions' types live in
``control_types`` and the row changes in ``datapayload``; both are named here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apps.core.thread.appspec import AppSpec, AppSpecError
from apps.core.thread.control_types import (
    AddMember,
    CertifyDevice,
    Control,
    Create,
    CreateInvite,
    DisableApp,
    EnableApp,
    Leave,
    RedeemInvite,
    RemoveMember,
    RevokeDevice,
    RevokeInvite,
    SetAddresses,
    SetMeta,
    SetName,
    SetPolicy,
    SetRole,
    TransferOwner,
)
from apps.core.thread.datapayload import (  # noqa: F401 (row changes are payloads: named here too)
    DELETE,
    MAX_COLS,
    MAX_ROWS,
    PK_MAX,
    UPSERT,
    DataPayload,
    RowChange,
    data_doc,
    data_parse,
)
from apps.core.thread.payload_shape import PayloadError, _fields
from apps.core.thread.policy import NAME_RE, Policy, PolicyError

MAX_TEXT = 256
MAX_ADDRS = 16
MAX_SEALS = 10_000
MAX_GRANTS = 100_000


def _key(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise PayloadError(f"{what}: expected a 32-byte key")
    return value


def _sig(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 64:
        raise PayloadError(f"{what}: expected a 64-byte signature")
    return value


def _role(value: Any) -> str:
    if type(value) is not str or not NAME_RE.match(value):
        raise PayloadError("role: expected a role name")
    return value


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if type(value) is not str or len(value) > limit:
        raise PayloadError(f"{what}: expected text of at most {limit} characters")
    return value


# --- control ------------------------------------------------------------------------------------

_INVITE_OPTIONAL = frozenset({"uses", "label"})
MAX_INVITE_USES = 1_000_000
MAX_INVITE_LABEL = 80


def _invite_uses(value: Any) -> int | None:
    """A multi-use invite's cap. One use is written by leaving ``uses`` out: one meaning, one
    encoding."""
    if value is None:
        return None
    if type(value) is not int or not 2 <= value <= MAX_INVITE_USES:
        raise PayloadError(
            f"uses: expected 2 to {MAX_INVITE_USES} uses, or null for no cap "
            "(a single-use invite leaves it out)"
        )
    return value


def _invite_label(value: Any) -> str:
    label = _text(value, "label", MAX_INVITE_LABEL)
    if not label or not label.isprintable() or label != label.strip():
        raise PayloadError(
            "label: expected printable text without surrounding spaces (no label: leave it out)"
        )
    return label


MAX_MEMBER_NAME = 80
# What a member's name may not hold, as a fixed list (not the Unicode database's idea of
# "printable", which changes between Python versions: every replica must decide alike): control
# characters, line breaks, invisible spaces and the marks that reorder text (bidi overrides and
# isolates), with which a name could pass for another or spill into the text around it. The
# joiners U+200C and U+200D stay allowed: scripts and emoji need them.
_NAME_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb]"
)


def name_normalize(text: str) -> str:
    """A name as it is written into a thread: runs of white space made one space, none around."""
    return " ".join(text.split())


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a member's name in a thread, in words for people; None if it can.
    One meaning, one encoding: the name must already be normalized (``name_normalize``)."""
    if type(name) is not str or not 0 < len(name) <= MAX_MEMBER_NAME:
        return f"a name has 1 to {MAX_MEMBER_NAME} characters"
    if _NAME_FORBIDDEN.search(name):
        return "a name cannot hold control characters, line breaks or text-direction marks"
    if name != name_normalize(name):
        return "a name has single spaces between words and none around it"
    return None


def _policy(doc: Any) -> Policy:
    try:
        return Policy.from_doc(doc)
    except PolicyError as exc:
        raise PayloadError(str(exc)) from exc


def control_parse(doc: Any) -> Control:
    if type(doc) is not dict or type(doc.get("type")) is not str:
        raise PayloadError("control: expected a map with a type")
    if any(type(k) is not str for k in doc):
        raise PayloadError("control: field names are text")
    kind = doc["type"]
    what = f"control {kind}"
    if kind == "create":
        d = _fields(doc, what, {"type", "nonce", "policy", "owner", "cert", "name", "app"})
        if type(d["nonce"]) is not bytes or len(d["nonce"]) != 16:
            raise PayloadError("create nonce: expected 16 bytes")
        app = _text(d["app"], "app", 64)
        if not NAME_RE.match(app):
            raise PayloadError("app: expected an app name")
        return Create(
            nonce=d["nonce"],
            policy=_policy(d["policy"]),
            owner=_key(d["owner"], "owner"),
            device_cert=_sig(d["cert"], "cert"),
            name=_text(d["name"], "name", 200),
            app=app,
        )
    if kind == "add_member":
        d = _fields(doc, what, {"type", "member", "role", "device", "cert", "device_proof"})
        return AddMember(
            _key(d["member"], "member"),
            _role(d["role"]),
            _key(d["device"], "device"),
            _sig(d["cert"], "cert"),
            _sig(d["device_proof"], "device_proof"),
        )
    if kind == "redeem_invite":
        d = _fields(
            doc, what, {"type", "invite", "member", "device", "cert", "proof", "device_proof"}
        )
        return RedeemInvite(
            _key(d["invite"], "invite"),
            _key(d["member"], "member"),
            _key(d["device"], "device"),
            _sig(d["cert"], "cert"),
            _sig(d["proof"], "proof"),
            _sig(d["device_proof"], "device_proof"),
        )
    if kind == "remove_member":
        d = _fields(doc, what, {"type", "member"})
        return RemoveMember(_key(d["member"], "member"))
    if kind == "leave":
        _fields(doc, what, {"type"})
        return Leave()
    if kind == "set_role":
        d = _fields(doc, what, {"type", "member", "role"})
        return SetRole(_key(d["member"], "member"), _role(d["role"]))
    if kind == "transfer_owner":
        d = _fields(doc, what, {"type", "member"})
        return TransferOwner(_key(d["member"], "member"))
    if kind == "certify_device":
        d = _fields(doc, what, {"type", "member", "device", "cert", "device_proof"})
        return CertifyDevice(
            _key(d["member"], "member"),
            _key(d["device"], "device"),
            _sig(d["cert"], "cert"),
            _sig(d["device_proof"], "device_proof"),
        )
    if kind == "revoke_device":
        d = _fields(doc, what, {"type", "device", "member_sig"})
        sig = d["member_sig"]
        return RevokeDevice(
            _key(d["device"], "device"), None if sig is None else _sig(sig, "member_sig")
        )
    if kind == "create_invite":
        d = _fields(doc, what, {"type", "invite", "role", "expiry"}, _INVITE_OPTIONAL)
        if type(d["expiry"]) is not int or not 0 < d["expiry"] < 2**48:
            raise PayloadError("expiry: expected milliseconds since the epoch")
        return CreateInvite(
            _key(d["invite"], "invite"),
            _role(d["role"]),
            d["expiry"],
            _invite_uses(d["uses"]) if "uses" in d else 1,
            _invite_label(d["label"]) if "label" in d else "",
        )
    if kind == "revoke_invite":
        d = _fields(doc, what, {"type", "invite"})
        return RevokeInvite(_key(d["invite"], "invite"))
    if kind == "set_addresses":
        d = _fields(doc, what, {"type", "addrs"})
        addrs = d["addrs"]
        if type(addrs) is not list or len(addrs) > MAX_ADDRS:
            raise PayloadError(f"addrs: expected a list of at most {MAX_ADDRS} addresses")
        return SetAddresses(tuple(_text(a, "address") for a in addrs))
    if kind == "set_policy":
        d = _fields(doc, what, {"type", "policy"})
        return SetPolicy(_policy(d["policy"]))
    if kind == "set_meta":
        d = _fields(doc, what, {"type", "name"})
        return SetMeta(_text(d["name"], "name", 200))
    if kind == "set_name":
        d = _fields(doc, what, {"type", "member", "name"})
        problem = name_problem(d["name"])
        if problem is not None:
            raise PayloadError(f"name: {problem}")
        return SetName(_key(d["member"], "member"), d["name"])
    if kind == "enable_app":
        d = _fields(doc, what, {"type", "app", "spec"})
        try:
            return EnableApp(AppSpec.from_doc(d["app"], d["spec"]))
        except AppSpecError as exc:
            raise PayloadError(str(exc)) from exc
    if kind == "disable_app":
        d = _fields(doc, what, {"type", "app"})
        app = _text(d["app"], "app", 64)
        if not NAME_RE.match(app):
            raise PayloadError("app: expected an app name")
        return DisableApp(app)
    raise PayloadError(f"control: unknown type {kind!r}")


def control_doc(action: Control) -> dict[str, Any]:
    """The payload document of a control action (the inverse of ``control_parse``)."""
    match action:
        case Create():
            return {
                "type": "create",
                "nonce": action.nonce,
                "policy": action.policy.to_doc(),
                "owner": action.owner,
                "cert": action.device_cert,
                "name": action.name,
                "app": action.app,
            }
        case AddMember():
            return {
                "type": "add_member",
                "member": action.member,
                "role": action.role,
                "device": action.device,
                "cert": action.device_cert,
                "device_proof": action.device_proof,
            }
        case RedeemInvite():
            return {
                "type": "redeem_invite",
                "invite": action.invite,
                "member": action.member,
                "device": action.device,
                "cert": action.device_cert,
                "proof": action.proof,
                "device_proof": action.device_proof,
            }
        case RemoveMember():
            return {"type": "remove_member", "member": action.member}
        case Leave():
            return {"type": "leave"}
        case SetRole():
            return {"type": "set_role", "member": action.member, "role": action.role}
        case TransferOwner():
            return {"type": "transfer_owner", "member": action.member}
        case CertifyDevice():
            return {
                "type": "certify_device",
                "member": action.member,
                "device": action.device,
                "cert": action.device_cert,
                "device_proof": action.device_proof,
            }
        case RevokeDevice():
            return {
                "type": "revoke_device",
                "device": action.device,
                "member_sig": action.member_sig,
            }
        case CreateInvite():
            doc = {
                "type": "create_invite",
                "invite": action.invite,
                "role": action.role,
                "expiry": action.expiry,
            }
            if action.uses != 1:
                doc["uses"] = action.uses
            if action.label:
                doc["label"] = action.label
            return doc
        case RevokeInvite():
            return {"type": "revoke_invite", "invite": action.invite}
        case SetAddresses():
            return {"type": "set_addresses", "addrs": list(action.addrs)}
        case SetPolicy():
            return {"type": "set_policy", "policy": action.policy.to_doc()}
        case SetMeta():
            return {"type": "set_meta", "name": action.name}
        case SetName():
            return {"type": "set_name", "member": action.member, "name": action.name}
        case EnableApp():
            return {"type": "enable_app", "app": action.spec.app, "spec": action.spec.to_doc()}
        case DisableApp():
            return {"type": "disable_app", "app": action.app}
    raise TypeError(f"not a control action: {action!r}")


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """A new epoch (or a reseal of one): the epoch secret sealed to each listed member."""

    epoch: int
    check: bytes
    seals: dict[bytes, bytes]


def keys_parse(doc: Any) -> Keys:
    d = _fields(doc, "keys", {"epoch", "check", "seal"})
    if type(d["epoch"]) is not int or not 1 <= d["epoch"] < 2**32:
        raise PayloadError("keys epoch: expected a positive integer")
    if type(d["check"]) is not bytes or len(d["check"]) != 16:
        raise PayloadError("keys check: expected 16 bytes")
    seals = d["seal"]
    if type(seals) is not dict or not 0 < len(seals) <= MAX_SEALS:
        raise PayloadError(f"keys seal: expected 1 to {MAX_SEALS} sealed boxes")
    for member, box in seals.items():
        _key(member, "keys seal member")
        if type(box) is not bytes or len(box) > 64 * MAX_GRANTS:
            raise PayloadError("keys seal box: expected bytes")
    return Keys(epoch=d["epoch"], check=d["check"], seals=dict(seals))


@dataclass(frozen=True)
class Grant:
    """One epoch's keys, as one sealed box grants them (``data`` None: control key only)."""

    epoch: int
    keys_op: bytes
    control: bytes
    data: bytes | None


def grants_parse(doc: Any) -> tuple[bytes, list[Grant]]:
    """The content of a sealed box: the new epoch secret and older epochs' keys."""
    d = _fields(doc, "sealed grant", {"secret", "old"})
    secret = _key(d["secret"], "grant secret")
    old = d["old"]
    if type(old) is not list or len(old) > MAX_GRANTS:
        raise PayloadError("grant old: expected a list")
    grants = []
    for entry in old:
        if (
            type(entry) is not list
            or len(entry) != 4
            or type(entry[0]) is not int
            or not 0 <= entry[0] < 2**32
        ):
            raise PayloadError("grant old: entries are [epoch, keys op, control, data]")
        data = None if entry[3] is None else _key(entry[3], "grant data key")
        grants.append(
            Grant(entry[0], _key(entry[1], "grant keys op"), _key(entry[2], "grant control"), data)
        )
    return secret, grants
