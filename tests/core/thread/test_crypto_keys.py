"""Signatures, key derivation and encryption (crypto.py, keys.py): each bound to its purpose."""

from __future__ import annotations

import nacl.signing
import pytest

from apps.core.thread import crypto, keys
from apps.core.thread.crypto import CryptoError

THREAD = bytes(range(32))
OTHER_THREAD = bytes(range(1, 33))
MASTER = b"\x11" * 32
OTHER_MASTER = b"\x22" * 32


def signing_key(n: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([n]) * 32)


def public(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


# --- domain-separated signatures ------------------------------------------------------------------


def test_signature_verifies_for_exactly_its_tag_thread_and_body():
    key = signing_key(1)
    sig = crypto.sign(key, "op", THREAD, b"body")
    assert len(sig) == crypto.SIG_SIZE
    crypto.verify(public(key), sig, "op", THREAD, b"body")
    with pytest.raises(CryptoError, match="device-cert"):
        crypto.verify(public(key), sig, "device-cert", THREAD, b"body")
    with pytest.raises(CryptoError):
        crypto.verify(public(key), sig, "op", OTHER_THREAD, b"body")
    with pytest.raises(CryptoError):
        crypto.verify(public(key), sig, "op", THREAD, b"bodY")
    with pytest.raises(CryptoError):
        crypto.verify(public(signing_key(2)), sig, "op", THREAD, b"body")


def test_signing_input_names_protocol_tag_and_thread():
    inputs = {
        crypto.signing_input("op", THREAD, b"x"),
        crypto.signing_input("device-cert", THREAD, b"x"),
        crypto.signing_input("op", OTHER_THREAD, b"x"),
        crypto.signing_input("op", THREAD, b"y"),
    }
    assert len(inputs) == 4
    # A raw Ed25519 signature over the body alone is not a domain-separated signature.
    key = signing_key(3)
    raw_sig = key.sign(b"body").signature
    with pytest.raises(CryptoError):
        crypto.verify(public(key), raw_sig, "op", THREAD, b"body")


@pytest.mark.parametrize(("key_len", "sig_len"), [(31, 64), (33, 64), (32, 63), (32, 65), (0, 0)])
def test_verify_refuses_malformed_keys_and_signatures(key_len: int, sig_len: int):
    with pytest.raises(CryptoError, match="malformed"):
        crypto.verify(b"\x01" * key_len, b"\x02" * sig_len, "op", THREAD, b"")


def test_verify_refuses_a_bit_flipped_signature():
    key = signing_key(4)
    sig = bytearray(crypto.sign(key, "op", THREAD, b"body"))
    for i in (0, 31, 32, 63):
        flipped = bytearray(sig)
        flipped[i] ^= 0x01
        with pytest.raises(CryptoError):
            crypto.verify(public(key), bytes(flipped), "op", THREAD, b"body")


# --- member keys ----------------------------------------------------------------------------------


def test_member_keys_are_deterministic_per_master_and_thread():
    one = keys.member_key(MASTER, THREAD)
    again = keys.member_key(MASTER, THREAD)
    assert public(one) == public(again)
    assert bytes(one) == bytes(again)
    # Unlinkable: another thread or another master gives another identity.
    assert public(keys.member_key(MASTER, OTHER_THREAD)) != public(one)
    assert public(keys.member_key(OTHER_MASTER, THREAD)) != public(one)
    # Not simply the master secret used as a seed.
    assert bytes(one) != MASTER
    assert public(one) != public(nacl.signing.SigningKey(MASTER))


def test_member_keys_differ_for_many_threads():
    publics = {public(keys.member_key(MASTER, bytes([i]) * 32)) for i in range(50)}
    assert len(publics) == 50


@pytest.mark.parametrize(("master_len", "thread_len"), [(31, 32), (32, 31), (33, 32), (32, 0)])
def test_member_key_refuses_wrong_lengths(master_len: int, thread_len: int):
    with pytest.raises(ValueError, match="32 bytes"):
        keys.member_key(b"\x01" * master_len, b"\x02" * thread_len)


# --- device certificates --------------------------------------------------------------------------


def test_device_certificate_verifies_for_its_member_device_and_thread():
    member = keys.member_key(MASTER, THREAD)
    device = public(signing_key(5))
    other_device = public(signing_key(6))
    other_member = public(keys.member_key(OTHER_MASTER, THREAD))
    cert = keys.device_cert_sign(member, THREAD, device)
    keys.device_cert_verify(THREAD, public(member), device, cert)
    with pytest.raises(CryptoError):
        keys.device_cert_verify(THREAD, other_member, device, cert)
    with pytest.raises(CryptoError):
        keys.device_cert_verify(THREAD, public(member), other_device, cert)
    with pytest.raises(CryptoError):
        keys.device_cert_verify(OTHER_THREAD, public(member), device, cert)
    # A certificate is not a revocation, and the other way round.
    cert_op = b"\x07" * 32
    with pytest.raises(CryptoError):
        keys.device_revoke_verify(THREAD, public(member), device, cert_op, cert)
    revoke = keys.device_revoke_sign(member, THREAD, device, cert_op)
    keys.device_revoke_verify(THREAD, public(member), device, cert_op, revoke)
    with pytest.raises(CryptoError):
        keys.device_cert_verify(THREAD, public(member), device, revoke)
    # A revocation names the certification it ends: it cannot be replayed against a later one.
    with pytest.raises(CryptoError):
        keys.device_revoke_verify(THREAD, public(member), device, b"\x08" * 32, revoke)


def test_device_proof_is_the_devices_own_signature_for_one_member_and_thread():
    member = public(keys.member_key(MASTER, THREAD))
    device_key = signing_key(8)
    proof = keys.device_proof_sign(device_key, THREAD, member)
    keys.device_proof_verify(THREAD, member, public(device_key), proof)
    for args in (
        (OTHER_THREAD, member, public(device_key)),
        (THREAD, public(keys.member_key(OTHER_MASTER, THREAD)), public(device_key)),
        (THREAD, member, public(signing_key(9))),
    ):
        with pytest.raises(CryptoError):
            keys.device_proof_verify(*args, proof)
    # Signed by the member instead of the device: not a proof of holding the device key.
    by_member = keys.device_proof_sign(keys.member_key(MASTER, THREAD), THREAD, member)
    with pytest.raises(CryptoError):
        keys.device_proof_verify(THREAD, member, public(device_key), by_member)


def test_device_certificate_signed_by_the_device_itself_is_refused():
    device_key = signing_key(7)
    member = keys.member_key(MASTER, THREAD)
    self_signed = keys.device_cert_sign(device_key, THREAD, public(device_key))
    with pytest.raises(CryptoError):
        keys.device_cert_verify(THREAD, public(member), public(device_key), self_signed)


# --- sealed boxes ---------------------------------------------------------------------------------


def test_sealed_box_round_trip_and_refusal_with_another_key():
    recipient = keys.member_key(MASTER, THREAD)
    box = crypto.seal(public(recipient), b"epoch secret")
    assert b"epoch secret" not in box
    assert crypto.unseal(recipient, box) == b"epoch secret"
    # Anonymous and randomised: the same plaintext seals differently each time.
    assert crypto.seal(public(recipient), b"epoch secret") != box
    with pytest.raises(CryptoError):
        crypto.unseal(keys.member_key(OTHER_MASTER, THREAD), box)
    damaged = bytearray(box)
    damaged[-1] ^= 1
    with pytest.raises(CryptoError):
        crypto.unseal(recipient, bytes(damaged))
    with pytest.raises(CryptoError):
        crypto.unseal(recipient, box[:-1])


# --- AEAD -----------------------------------------------------------------------------------------


def test_aead_round_trip_and_failures():
    key = crypto.hkdf(MASTER, info=b"test/aead")
    other_key = crypto.hkdf(MASTER, info=b"test/aead-other")
    box = crypto.aead_encrypt(key, b"row data", b"header")
    assert len(box) == crypto.NONCE_SIZE + len(b"row data") + crypto.AEAD_OVERHEAD
    assert crypto.aead_decrypt(key, box, b"header") == b"row data"
    assert crypto.aead_encrypt(key, b"row data", b"header") != box  # random nonce
    with pytest.raises(CryptoError, match="does not open"):
        crypto.aead_decrypt(other_key, box, b"header")
    with pytest.raises(CryptoError, match="does not open"):
        crypto.aead_decrypt(key, box, b"headeR")
    with pytest.raises(CryptoError, match="does not open"):
        crypto.aead_decrypt(key, box[:-1], b"header")
    with pytest.raises(CryptoError, match="does not open"):
        crypto.aead_decrypt(key, box[1:], b"header")
    with pytest.raises(CryptoError, match="too short"):
        crypto.aead_decrypt(key, box[: crypto.NONCE_SIZE + crypto.AEAD_OVERHEAD - 1], b"header")
    for i in range(0, len(box), 7):
        damaged = bytearray(box)
        damaged[i] ^= 0x80
        with pytest.raises(CryptoError):
            crypto.aead_decrypt(key, bytes(damaged), b"header")


def test_aead_empty_plaintext_round_trips():
    key = b"\x05" * 32
    box = crypto.aead_encrypt(key, b"", b"")
    assert len(box) == crypto.NONCE_SIZE + crypto.AEAD_OVERHEAD
    assert crypto.aead_decrypt(key, box, b"") == b""


# --- epoch keys and thread ids --------------------------------------------------------------------


def test_epoch_keys_are_distinct_and_bound_to_the_thread():
    secret = b"\x33" * 32
    epoch = keys.EpochKeys.from_secret(THREAD, 3, secret)
    assert epoch.epoch == 3
    assert epoch.secret == secret
    values = [epoch.control, epoch.data, epoch.wrap_key(THREAD), epoch.check(THREAD), secret]
    assert len({bytes(v) for v in values}) == len(values)
    assert len(epoch.control) == len(epoch.data) == 32
    assert len(epoch.check(THREAD)) == 16
    other = keys.EpochKeys.from_secret(OTHER_THREAD, 3, secret)
    assert other.control != epoch.control
    assert other.data != epoch.data
    assert other.wrap_key(OTHER_THREAD) != epoch.wrap_key(THREAD)
    assert other.check(OTHER_THREAD) != epoch.check(THREAD)
    # Deterministic in the secret, different for another secret.
    assert keys.EpochKeys.from_secret(THREAD, 3, secret) == epoch
    assert keys.EpochKeys.from_secret(THREAD, 3, b"\x34" * 32).data != epoch.data


def test_control_only_epoch_keys_cannot_wrap_or_check():
    control_only = keys.EpochKeys(epoch=1, control=b"\x01" * 32, data=None)
    with pytest.raises(ValueError, match="secret"):
        control_only.wrap_key(THREAD)
    with pytest.raises(ValueError, match="both keys"):
        control_only.check(THREAD)


def test_the_check_value_commits_to_each_key_apart():
    full = keys.EpochKeys.from_secret(THREAD, 2, b"\x44" * 32)
    check = full.check(THREAD)
    assert full.matches(check) == (True, True)
    # A grant of the control key alone (a member without history) is checked on its own half.
    assert keys.EpochKeys(2, full.control, None).matches(check) == (True, False)
    other = keys.EpochKeys.from_secret(THREAD, 2, b"\x45" * 32)
    assert other.matches(check) == (False, False)
    assert keys.EpochKeys(2, full.control, other.data).matches(check) == (True, False)


def test_epoch_secrets_are_random():
    assert keys.epoch_secret_new() != keys.epoch_secret_new()
    assert len(keys.epoch_secret_new()) == 32


def test_thread_id_depends_on_nonce_and_creator_device():
    nonce, device = b"\x01" * 16, public(signing_key(8))
    thread = keys.thread_id_for(nonce, device)
    assert len(thread) == 32
    assert keys.thread_id_for(nonce, device) == thread
    assert keys.thread_id_for(b"\x02" * 16, device) != thread
    assert keys.thread_id_for(nonce, public(signing_key(9))) != thread


def test_genesis_key_is_per_thread():
    assert keys.genesis_key(THREAD) == keys.genesis_key(THREAD)
    assert keys.genesis_key(THREAD) != keys.genesis_key(OTHER_THREAD)
    assert len(keys.genesis_key(THREAD)) == 32


def test_hkdf_separates_by_info_and_length():
    a = crypto.hkdf(MASTER, info=b"a")
    assert a != crypto.hkdf(MASTER, info=b"b")
    assert a != crypto.hkdf(OTHER_MASTER, info=b"a")
    assert len(crypto.hkdf(MASTER, info=b"a", length=16)) == 16


def test_public_key_valid():
    assert crypto.public_key_valid(public(signing_key(10)))
    assert not crypto.public_key_valid(b"\x01" * 31)
    assert not crypto.public_key_valid(b"\x01" * 33)
    # y = 2 is not on the curve: no X25519 form.
    assert not crypto.public_key_valid(b"\x02" + b"\x00" * 31)
