"""Hostile bytes: ``Replica.ingest`` answers every input with an IngestResult, never an exception.

Arbitrary bytes, arbitrary CBOR, op-shaped maps with random field values, ops signed by real
devices with random (but plausible) headers and bodies, truncations of valid ops, huge blobs and
deep nesting.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any, get_args

import nacl.signing
import nacl.utils
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.thread import codec, crypto
from apps.core.thread import payloads as p
from apps.core.thread.batch import IngestResult, IngestStatus
from apps.core.thread.hlc import MAX_MILLIS, HybridClock, Stamp
from apps.core.thread.op import (
    FIELDS,
    KIND_CONTROL,
    KIND_DATA,
    KIND_KEYS,
    KINDS,
    MAX_OP_SIZE,
    op_seal,
    op_sign,
)
from apps.core.thread.policy import default_policy
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, redemption_request
from tests.core.thread.conftest import rid

NOW = 1_700_000_000_000  # the fake wall clock of the writers: stamps are deterministic
STATUSES = set(get_args(IngestStatus)) - {"admitted"}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class World:
    owner: ThreadWriter
    writer: ThreadWriter
    raws: list[bytes]
    stranger: nacl.signing.SigningKey


def _seeded(seed: int):
    rng = random.Random(seed)
    return lambda size: rng.randbytes(size)


@functools.cache
def world() -> World:
    """A small thread: an owner, a writer admitted by invite, data from both."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nacl.utils, "random", _seeded(99))
        owner = ThreadWriter.create(
            master_secret=b"\x01" * 32,
            device_key=nacl.signing.SigningKey(b"\x02" * 32),
            name="Fuzz",
            clock=HybridClock(wall=lambda: NOW),
        )
        owner.write_data([p.RowChange("notes", "n1", p.UPSERT, {"text": "hi"})])
        invite = owner.invite_create(role="writer", expiry=2**47, inviter="peer")
        device = nacl.signing.SigningKey(b"\x04" * 32)
        owner.admit(redemption_request(invite, master_secret=b"\x03" * 32, device_key=device))
        writer = ThreadWriter.for_member(
            Replica.for_members(owner.thread),
            master_secret=b"\x03" * 32,
            device_key=device,
            clock=HybridClock(wall=lambda: NOW),
        )
        for op in owner.replica.admitted:
            writer.replica.ingest(op.raw)
        writer.write_data(
            [p.RowChange("notes", rid(writer, "n2"), p.UPSERT, {"text": "from the writer"})]
        )
        for op in writer.replica.admitted:
            owner.replica.ingest(op.raw)
    assert all(d.status == "accepted" for d in owner.replica.decisions.values())
    return World(
        owner=owner,
        writer=writer,
        raws=[op.raw for op in owner.replica.admitted],
        stranger=nacl.signing.SigningKey(b"\x05" * 32),
    )


def loaded_replica() -> Replica:
    w = world()
    replica = Replica.for_members(w.owner.thread, [w.owner.member_key])
    for raw in w.raws:
        assert replica.ingest(raw).status == "accepted"
    return replica


@functools.cache
def shared_replica() -> Replica:
    """For inputs that cannot change a replica (nothing signed): built once."""
    return loaded_replica()


def check_result(replica: Replica, raw: Any) -> IngestResult:
    result = replica.ingest(raw)
    assert isinstance(result, IngestResult)
    assert result.status in STATUSES, result
    if result.status == "malformed":
        assert result.reason
    # The replica stays readable and consistent.
    replica.snapshot()
    assert all(op.hash in replica.decisions for op in replica.admitted)
    list(replica.accepted_data())
    return result


def assert_untouched(replica: Replica) -> None:
    assert len(replica.admitted) == len(world().raws)
    assert not replica.pending
    assert not replica.forks


# --- arbitrary input ------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes):
    replica = shared_replica()
    assert check_result(replica, data).status == "malformed"
    assert_untouched(replica)


cbor_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=10),
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
    st.floats(),
)
cbor_values = st.recursive(
    cbor_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(sorted(FIELDS)) | st.text(max_size=5), inner, max_size=6),
    ),
    max_leaves=20,
)


@FUZZ
@given(cbor_values)
def test_arbitrary_cbor(value: Any):
    replica = shared_replica()
    assert check_result(replica, codec.encode(value)).status == "malformed"
    assert_untouched(replica)


def field_values(field: str) -> st.SearchStrategy:
    """Plausible values for one op field, mixed with anything at all."""
    plausible = {
        "v": st.sampled_from([1, 0, 2]),
        "thread": st.just(world().owner.thread) | st.binary(min_size=31, max_size=33),
        "device": st.sampled_from([world().owner.device, world().writer.device])
        | st.binary(min_size=32, max_size=32),
        "seq": st.integers(min_value=-2, max_value=2**64 - 1),
        "prev": st.none() | st.binary(min_size=32, max_size=32),
        "deps": st.lists(
            st.tuples(st.binary(min_size=32, max_size=32), st.integers(-1, 5)).map(list),
            max_size=3,
        ),
        "hlc": st.lists(st.integers(min_value=-1, max_value=2**49), min_size=0, max_size=3),
        "epoch": st.integers(min_value=-1, max_value=2**33),
        "kind": st.sampled_from(sorted(KINDS)) | st.text(max_size=8),
        "body": st.binary(max_size=64),
        "sig": st.binary(min_size=64, max_size=64) | st.binary(max_size=70),
    }[field]
    return st.one_of(plausible, plausible, cbor_values)


@st.composite
def op_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A valid op's document with one to three fields given random values, sometimes a field
    dropped or one added: deep enough to reach every check of step 1 (and the signature)."""
    doc = codec.decode(draw(st.sampled_from(world().raws)), max_size=MAX_OP_SIZE)
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3)):
        doc[name] = draw(field_values(name))
    shape = draw(st.sampled_from(["keep"] * 8 + ["drop", "extra"]))
    if shape == "drop":
        del doc[draw(st.sampled_from(sorted(FIELDS)))]
    elif shape == "extra":
        doc[draw(st.text(max_size=6))] = draw(cbor_scalars)
    return doc


@settings(FUZZ, max_examples=200)
@given(op_maps())
def test_op_shaped_maps_with_random_fields(doc: dict[str, Any]):
    raw = codec.encode(doc)
    replica = shared_replica()
    if raw in world().raws:
        return
    # Nothing here is signed by a device: malformed, or foreign if it names another thread.
    assert check_result(replica, raw).status in ("malformed", "foreign")
    assert_untouched(replica)


# --- signed ops with random content ---------------------------------------------------------------


@st.composite
def perturbed_policies(draw: st.DrawFn) -> dict[str, Any]:
    """The default policy document with one value somewhere replaced by anything."""
    doc = default_policy().to_doc()
    role = doc["roles"][draw(st.sampled_from(sorted(doc["roles"])))]
    field = draw(st.sampled_from(["rank", "invite", "manage", "history", "tables", "scope"]))
    if field == "scope":
        role["tables"] = {"*": {draw(st.sampled_from(["insert", "update"])): draw(cbor_values)}}
    else:
        role[field] = draw(cbor_values)
    return doc


control_payloads = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "create",
                "add_member",
                "redeem_invite",
                "remove_member",
                "leave",
                "set_role",
                "transfer_owner",
                "certify_device",
                "revoke_device",
                "create_invite",
                "revoke_invite",
                "set_addresses",
                "set_policy",
                "set_meta",
                "set_name",
                "nonsense",
            ]
        )
    },
    optional={
        "member": st.binary(min_size=32, max_size=32) | cbor_scalars,
        "device": st.binary(min_size=32, max_size=32) | cbor_scalars,
        "role": st.sampled_from(["owner", "admin", "writer", "reader", "x"]) | cbor_scalars,
        "invite": st.binary(min_size=32, max_size=32) | cbor_scalars,
        "cert": st.binary(min_size=64, max_size=64) | cbor_scalars,
        "proof": st.binary(min_size=64, max_size=64) | cbor_scalars,
        "expiry": st.integers(min_value=-1, max_value=2**49),
        "addrs": st.lists(st.text(max_size=5), max_size=3) | cbor_values,
        "name": st.text(max_size=10) | cbor_scalars,
        "member_sig": st.none() | st.binary(min_size=64, max_size=64),
        "policy": cbor_values | perturbed_policies(),
    },
)
data_payloads = st.fixed_dictionaries(
    {
        "rows": st.lists(
            st.fixed_dictionaries(
                {
                    "table": st.sampled_from(["notes", "*", "Bad"]) | cbor_scalars,
                    "pk": st.text(max_size=5) | cbor_scalars,
                    "action": st.sampled_from(["upsert", "delete", "x"]),
                    "cols": st.dictionaries(st.text(max_size=4), cbor_values, max_size=3)
                    | cbor_scalars,
                }
            ),
            max_size=3,
        )
        | cbor_values,
        "schema": st.dictionaries(st.text(max_size=4), st.text(max_size=4) | cbor_scalars)
        | cbor_values,
    }
)
keys_payloads = st.fixed_dictionaries(
    {
        "epoch": st.integers(min_value=-1, max_value=5),
        "check": st.binary(min_size=15, max_size=17),
        "seal": st.dictionaries(
            st.binary(min_size=32, max_size=32) | st.text(max_size=3),
            st.binary(max_size=80),
            max_size=2,
        )
        | cbor_values,
    }
)
PAYLOADS = {KIND_CONTROL: control_payloads, KIND_DATA: data_payloads, KIND_KEYS: keys_payloads}


@st.composite
def signed_ops(draw: st.DrawFn) -> bytes:
    w = world()
    author = draw(st.sampled_from(["owner", "writer", "stranger"]))
    key = {
        "owner": w.owner.device_key,
        "writer": w.writer.device_key,
        "stranger": w.stranger,
    }[author]
    device = bytes(key.verify_key)
    replica = w.owner.replica
    head = replica.heads.get(device, 0)
    top = replica.max_hlc
    usable, epoch_keys = w.owner._usable_epoch()
    if draw(st.sampled_from(["next", "random"])) == "next":
        # The header an honest next op would carry: the payload is what gets exercised.
        seq = head + 1
        prev = replica.slots[(device, head)].hash if head else None
        deps = sorted((d, s) for d, s in replica.heads.items() if d != device)
        hlc = Stamp(top.millis, top.counter + 1)
        epoch = usable
    else:
        seq = draw(st.integers(min_value=1, max_value=head + 3))
        prev = None
        if seq > 1:
            hashes = [op.hash for op in replica.admitted]
            prev = draw(st.sampled_from(hashes) | st.binary(min_size=32, max_size=32))
        heads = replica.heads
        named = draw(
            st.lists(st.sampled_from(sorted(d for d in heads if d != device)), unique=True)
        )
        deps = sorted((d, draw(st.integers(min_value=1, max_value=heads[d] + 2))) for d in named)
        millis = st.integers(min_value=top.millis - 2, max_value=min(MAX_MILLIS, top.millis + 2))
        hlc = Stamp(draw(millis), draw(st.integers(min_value=0, max_value=top.counter + 3)))
        epoch = draw(st.integers(min_value=0, max_value=usable + 1))
    kind = draw(st.sampled_from(sorted(KINDS)))
    payload = codec.encode(draw(PAYLOADS[kind] | cbor_values))
    how = draw(st.sampled_from(["right key", "raw", "random"]))
    junk = draw(st.binary(max_size=100))

    def seal(aad: bytes) -> bytes:
        if kind == KIND_KEYS or how == "raw":
            return payload
        if how == "right key":
            key_bytes = epoch_keys.data if kind == KIND_DATA else epoch_keys.control
            return crypto.aead_encrypt(key_bytes, payload, aad)
        return junk

    return op_seal(
        key,
        thread=w.owner.thread,
        seq=seq,
        prev=prev,
        deps=deps,
        hlc=hlc,
        epoch=epoch,
        kind=kind,
        seal=seal,
    ).raw


@settings(FUZZ, max_examples=150)
@given(st.lists(signed_ops(), min_size=1, max_size=3))
def test_signed_ops_with_random_content(raws: list[bytes]):
    replica = loaded_replica()
    for raw in raws:
        check_result(replica, raw)
    # Feeding the same bytes again is a duplicate (or still malformed), never an error.
    for raw in raws:
        assert check_result(replica, raw).status in (
            "duplicate",
            "malformed",
            "unknown",
            "held",
            "fork",
        )


def _forge_control(author: ThreadWriter, payload: dict) -> bytes:
    """A control op as ``author``'s device would write it, with any payload."""
    replica = author.replica
    seq = replica.heads.get(author.device, 0) + 1
    prev = replica.slots[(author.device, seq - 1)].hash if seq > 1 else None
    deps = sorted((d, s) for d, s in replica.heads.items() if d != author.device)
    top = replica.max_hlc
    hlc = Stamp(top.millis, top.counter + 1)
    epoch, epoch_keys = author._usable_epoch()
    return op_seal(
        author.device_key,
        thread=author.thread,
        seq=seq,
        prev=prev,
        deps=deps,
        hlc=hlc,
        epoch=epoch,
        kind=KIND_CONTROL,
        seal=lambda aad: crypto.aead_encrypt(epoch_keys.control, codec.encode(payload), aad),
    ).raw


@pytest.mark.parametrize("scope", [["any"], {"any": 1}])
def test_member_sending_a_policy_with_an_unhashable_scope_does_not_crash_replicas(scope: Any):
    """Any member can seal a control op: a set_policy whose table scope is a list (or map) must
    be refused like any other bad policy, not raise TypeError out of every replica's ingest."""
    policy = default_policy().to_doc()
    policy["roles"]["writer"]["tables"] = {"*": {"insert": scope}}
    raw = _forge_control(world().writer, {"type": "set_policy", "policy": policy})
    replica = loaded_replica()
    result = check_result(replica, raw)
    assert result.status == "refused"
    assert result.op is not None
    assert replica.decision(result.op.hash) is not None


# --- truncation, size, depth ----------------------------------------------------------------------


def test_truncated_valid_ops_at_every_length():
    replica = shared_replica()
    checked = 0
    for raw in world().raws:
        for length in range(len(raw)):
            assert check_result(replica, raw[:length]).status == "malformed", length
            checked += 1
    assert checked > 1000
    assert_untouched(replica)


def test_valid_ops_with_a_trailing_byte():
    replica = shared_replica()
    for raw in world().raws:
        assert check_result(replica, raw + b"\x00").status == "malformed"


def test_two_mebibyte_blob():
    replica = shared_replica()
    blob = random.Random(5).randbytes(2 << 20)
    result = check_result(replica, blob)
    assert result.status == "malformed"
    assert "limit" in result.reason
    assert_untouched(replica)


def test_op_over_the_size_limit_is_malformed_even_when_signed():
    w = world()
    top = w.owner.replica.max_hlc
    op = op_sign(
        w.owner.device_key,
        thread=w.owner.thread,
        seq=w.owner.replica.heads[w.owner.device] + 1,
        prev=w.owner.replica.admitted[-1].hash,
        deps=[],
        hlc=Stamp(top.millis + 1, 0),
        epoch=0,
        kind=KIND_DATA,
        body=b"\x00" * MAX_OP_SIZE,
    )
    replica = shared_replica()
    result = check_result(replica, op.raw)
    assert result.status == "malformed"
    assert "limit" in result.reason
    assert_untouched(replica)


@pytest.mark.parametrize("depth", [17, 18, 100, 10_000, 500_000])
def test_deeply_nested_cbor(depth: int):
    replica = shared_replica()
    lists = b"\x81" * depth + b"\x00"
    maps = b"\xa1\x61v" * depth + b"\x01"  # {"v": {"v": ... 1}}
    for data in (lists, maps):
        assert check_result(replica, data).status == "malformed"


@pytest.mark.parametrize("depth", [15, 16, 17, 1000])
def test_deeply_nested_value_inside_an_op(depth: int):
    doc = codec.decode(world().raws[-1], max_size=MAX_OP_SIZE)
    doc["body"] = b"HOLE"
    raw = codec.encode(doc)
    nested = b"\x81" * depth + b"\x00"
    # Splice the nested array where the body's byte string was.
    raw = raw.replace(b"\x44HOLE", nested)
    replica = shared_replica()
    assert check_result(replica, raw).status == "malformed"
    assert_untouched(replica)


@pytest.mark.parametrize("value", ["a string", None, 12, [b"\x00"], bytearray(b"\xa0")])
def test_non_bytes_and_bytes_like_input(value: Any):
    replica = shared_replica()
    assert check_result(replica, value).status == "malformed"
