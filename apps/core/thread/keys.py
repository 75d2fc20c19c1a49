"""Identities and keys inside a thread.

- **Member key**: a party's Ed25519 identity in one thread, HKDF(master, "sereus/member/v1/" +
  thread id). Different in every thread, so two threads cannot link a person.
- **Device certificate**: the member key signs "device D acts for me in thread T".
- **Epoch secret**: 32 random bytes per key epoch. The data key and the control key are derived
  from it, so a member admitted without history can be given old *control* keys (to check who was
  a member when) without old *data* keys.
- **Genesis key**: derived from the thread id; it opens only the thread's first op (the policy and
  the owner's key), which any invitee must be able to check.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.signing
import nacl.utils

from apps.core.thread import codec, crypto


def member_key(master_secret: bytes, thread: bytes) -> nacl.signing.SigningKey:
    if len(master_secret) != 32 or len(thread) != 32:
        raise ValueError("the master secret and the thread id are 32 bytes each")
    return nacl.signing.SigningKey(crypto.hkdf(master_secret, info=b"sereus/member/v1/" + thread))


def device_cert_body(member: bytes, device: bytes) -> bytes:
    return codec.encode({"member": member, "device": device})


def device_cert_sign(member: nacl.signing.SigningKey, thread: bytes, device: bytes) -> bytes:
    """The member's signature admitting ``device`` to act for it in ``thread``."""
    return crypto.sign(
        member, "device-cert", thread, device_cert_body(bytes(member.verify_key), device)
    )


def device_cert_verify(thread: bytes, member: bytes, device: bytes, sig: bytes) -> None:
    crypto.verify(member, sig, "device-cert", thread, device_cert_body(member, device))


def device_proof_sign(device: nacl.signing.SigningKey, thread: bytes, member: bytes) -> bytes:
    """The device's own signature: "I hold this key and act for ``member`` in ``thread``".
    Without it a member could certify another node's device key as its own (squatting it: the
    real owner could then never certify it)."""
    return crypto.sign(
        device, "device-proof", thread, device_cert_body(member, bytes(device.verify_key))
    )


def device_proof_verify(thread: bytes, member: bytes, device: bytes, sig: bytes) -> None:
    crypto.verify(device, sig, "device-proof", thread, device_cert_body(member, device))


def _revoke_body(member: bytes, device: bytes, certified_by: bytes) -> bytes:
    # Bound to the op that certified the device: a revocation cannot be replayed against a
    # later certification of the same device (a member that rejoined).
    return codec.encode({"member": member, "device": device, "cert_op": certified_by})


def device_revoke_sign(
    member: nacl.signing.SigningKey, thread: bytes, device: bytes, certified_by: bytes
) -> bytes:
    return crypto.sign(
        member,
        "device-revoke",
        thread,
        _revoke_body(bytes(member.verify_key), device, certified_by),
    )


def device_revoke_verify(
    thread: bytes, member: bytes, device: bytes, certified_by: bytes, sig: bytes
) -> None:
    crypto.verify(member, sig, "device-revoke", thread, _revoke_body(member, device, certified_by))


def genesis_key(thread: bytes) -> bytes:
    return crypto.hkdf(thread, info=b"sereus/genesis/v1")


def thread_id_for(nonce: bytes, creator_device: bytes) -> bytes:
    """A thread's id commits to its creator's device key (and a random nonce): only that device
    can sign the thread's create op, so nobody can forge a second one. (It cannot commit to the
    owner's member key: that key is derived from the thread id.)"""
    return crypto.blake2b256(
        codec.encode({"nonce": nonce, "creator": creator_device}), person=b"sereus-thread"
    )


@dataclass(frozen=True)
class EpochKeys:
    """The keys of one epoch. ``secret`` is None when only the control key is known."""

    epoch: int
    control: bytes
    data: bytes | None
    secret: bytes | None = None

    @classmethod
    def from_secret(cls, thread: bytes, epoch: int, secret: bytes) -> EpochKeys:
        return cls(
            epoch=epoch,
            control=crypto.hkdf(secret, info=b"sereus/epoch-control/v1/" + thread),
            data=crypto.hkdf(secret, info=b"sereus/epoch-data/v1/" + thread),
            secret=secret,
        )

    def wrap_key(self, thread: bytes) -> bytes:
        if self.secret is None:
            raise ValueError("wrapping needs the epoch secret")
        return crypto.hkdf(self.secret, info=b"sereus/epoch-wrap/v1/" + thread)

    def check(self, thread: bytes) -> bytes:
        """The public check value of the epoch's keys (see ``check_value``)."""
        if self.data is None:
            raise ValueError("the check value needs both keys of the epoch")
        return check_value(self.control, self.data)

    def matches(self, check: bytes) -> tuple[bool, bool]:
        """Whether this epoch's control key, and its data key, are the ones ``check`` names."""
        control = check_part(self.control, b"c") == check[:CHECK_PART]
        data = self.data is not None and check_part(self.data, b"d") == check[CHECK_PART:]
        return control, data


CHECK_PART = 8


def check_part(key: bytes, which: bytes) -> bytes:
    return crypto.blake2b256(key, person=b"sereus-check-" + which)[:CHECK_PART]


def check_value(control: bytes, data: bytes) -> bytes:
    """A keys op's public check value: a commitment to the control key and one to the data key.

    Every key a replica uses must match it, so every replica that can open a body opens it with
    the same key, and a body that does not open with the matching key fails for all of them
    alike (issue 9: a rotator sealing different secrets to different members made replicas
    decide differently). The two halves can be checked apart, since a member admitted without
    history receives older control keys without their data keys. 64 bits each: making a
    second key that matches costs a second preimage."""
    return check_part(control, b"c") + check_part(data, b"d")


def epoch_secret_new() -> bytes:
    return nacl.utils.random(32)
