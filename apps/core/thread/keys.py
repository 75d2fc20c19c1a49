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


def device_revoke_sign(member: nacl.signing.SigningKey, thread: bytes, device: bytes) -> bytes:
    return crypto.sign(
        member, "device-revoke", thread, device_cert_body(bytes(member.verify_key), device)
    )


def device_revoke_verify(thread: bytes, member: bytes, device: bytes, sig: bytes) -> None:
    crypto.verify(member, sig, "device-revoke", thread, device_cert_body(member, device))


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
        """A public tag of the epoch secret: reseals of an epoch must carry the same one."""
        if self.secret is None:
            raise ValueError("the check value needs the epoch secret")
        return crypto.hkdf(self.secret, info=b"sereus/epoch-check/v1/" + thread, length=16)


def epoch_secret_new() -> bytes:
    return nacl.utils.random(32)
