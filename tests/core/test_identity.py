"""Node keys on disk: the device key, the master secret (sealed or not), the recovery phrase."""

from __future__ import annotations

import stat
from pathlib import Path

import cbor2
import nacl.utils
import pytest

from apps.core import identity


def test_device_key_is_created_once_0600(tmp_path: Path):
    first = identity.device_key_ensure(tmp_path)
    path = tmp_path / identity.DEVICE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity.device_key_ensure(tmp_path).public_key == first.public_key
    assert first.peer_id.startswith("12D3KooW")


def test_peer_id_matches_libp2p(tmp_path: Path):
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    device = identity.device_key_ensure(tmp_path)
    key_pair = create_new_key_pair(bytes(device.signing_key))
    assert key_pair.public_key.to_bytes() == device.public_key
    assert ID.from_pubkey(key_pair.public_key).to_base58() == device.peer_id
    assert ID.from_base58(device.peer_id).extract_public_key().to_bytes() == device.public_key


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\x00garbage", "corrupt"),
        (cbor2.dumps({"v": 1, "kind": "sereus/master-secret"}), "not a sereus/device-key"),
        (cbor2.dumps({"v": 9, "kind": "sereus/device-key", "seed": b"x" * 32}), "version 9"),
        (cbor2.dumps({"v": 1, "kind": "sereus/device-key", "seed": b"short"}), "not 32 bytes"),
    ],
)
def test_bad_device_key_files_give_clear_errors(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / identity.DEVICE_KEY_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(identity.KeyFileError, match=message):
        identity.device_key_load(tmp_path)


def test_exposed_device_key_is_refused(tmp_path: Path):
    identity.device_key_ensure(tmp_path)
    (tmp_path / identity.DEVICE_KEY_FILE).chmod(0o640)
    with pytest.raises(identity.KeyFileError, match="chmod 600"):
        identity.device_key_load(tmp_path)


def test_master_secret_plain_and_sealed(tmp_path: Path):
    secret = nacl.utils.random(32)
    identity.master_secret_create(tmp_path, secret)
    assert stat.S_IMODE((tmp_path / identity.MASTER_SECRET_FILE).stat().st_mode) == 0o600
    assert identity.master_secret_load(tmp_path) == secret
    with pytest.raises(identity.KeyFileError, match="already has"):
        identity.master_secret_create(tmp_path, nacl.utils.random(32))

    identity.master_secret_reseal(
        tmp_path, old_passphrase=None, new_passphrase="a long passphrase", cost="interactive"
    )
    assert identity.master_secret_is_sealed(tmp_path)
    assert secret not in (tmp_path / identity.MASTER_SECRET_FILE).read_bytes()
    with pytest.raises(identity.PassphraseRequired):
        identity.master_secret_load(tmp_path)
    with pytest.raises(identity.WrongPassphrase):
        identity.master_secret_load(tmp_path, passphrase="wrong passphrase")
    assert identity.master_secret_load(tmp_path, passphrase="a long passphrase") == secret

    identity.master_secret_reseal(
        tmp_path, old_passphrase="a long passphrase", new_passphrase=None, cost="interactive"
    )
    assert not identity.master_secret_is_sealed(tmp_path)
    assert identity.master_secret_load(tmp_path) == secret


def test_sealed_file_with_absurd_kdf_cost_is_refused_without_deriving(tmp_path: Path):
    path = tmp_path / identity.MASTER_SECRET_FILE
    sealed = {"kdf": "argon2id", "salt": b"s" * 16, "opslimit": 1, "memlimit": 2**40, "box": b""}
    path.write_bytes(cbor2.dumps({"v": 1, "kind": "sereus/master-secret", "sealed": sealed}))
    path.chmod(0o600)
    with pytest.raises(identity.KeyFileError, match="out of range"):
        identity.master_secret_load(tmp_path, passphrase="whatever passphrase")


def test_recovery_phrase_round_trip():
    secret = nacl.utils.random(32)
    phrase = identity.recovery_phrase_from_secret(secret)
    assert len(phrase.split()) == 24
    messy = "  " + "\n".join(phrase.upper().split()) + "\n"
    assert identity.recovery_phrase_to_secret(messy) == secret


def test_recovery_phrase_errors_say_what_is_wrong():
    words = identity.recovery_phrase_from_secret(bytes(32)).split()
    with pytest.raises(identity.RecoveryPhraseError, match="24 words, this one has 23"):
        identity.recovery_phrase_to_secret(" ".join(words[:-1]))
    with pytest.raises(identity.RecoveryPhraseError, match="not in the BIP39 word list: sereus"):
        identity.recovery_phrase_to_secret(" ".join([*words[:-1], "sereus"]))
    swapped = [words[1], words[0], *words[2:]] if words[0] != words[1] else None
    wrong_last = [*words[:-1], "zoo" if words[-1] != "zoo" else "abandon"]
    with pytest.raises(identity.RecoveryPhraseError, match="checksum"):
        identity.recovery_phrase_to_secret(" ".join(swapped or wrong_last))
