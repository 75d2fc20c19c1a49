"""The node's keys on disk: the device key (who this node is) and the party's master secret.

Both live in the data dir as small versioned CBOR files, mode 0600. The device key is always in
the clear (the node must start unattended). The master secret may be sealed with a passphrase:
Argon2id (``nacl.pwhash``) derives a key that opens a SecretBox (XSalsa20-Poly1305).

No libp2p import here: ``import libp2p`` costs ~1.2 s and ~86 MB, and the web process needs only
the peer id, which is computed from the public key as libp2p defines it (tested against libp2p).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import base58
import cbor2
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.signing
import nacl.utils
from mnemonic import Mnemonic

from sereus_web.files import secret_file_create, secret_file_read, secret_file_replace

DEVICE_KEY_FILE = "device.key"
MASTER_SECRET_FILE = "master.key"  # noqa: S105 - a file name, not a secret
FILE_VERSION = 1
SECRET_SIZE = 32

PwhashCost = Literal["interactive", "moderate", "sensitive"]
_PWHASH_LIMITS: dict[str, tuple[int, int]] = {
    "interactive": (
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    ),
    "moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
    "sensitive": (
        nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE,
        nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE,
    ),
}
# Upper bounds accepted when reading a sealed file, so a tampered file cannot make the node
# spend minutes or gigabytes deriving a key.
_MAX_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE


class KeyFileError(Exception):
    """A key file that is missing, corrupt, of an unknown version, or insecure."""


class PassphraseRequired(KeyFileError):
    """The master secret is sealed and no passphrase was given."""


class WrongPassphrase(KeyFileError):
    """The passphrase does not open the sealed master secret."""


class RecoveryPhraseError(ValueError):
    """A recovery phrase that is not 24 valid BIP39 words with a correct checksum."""


@dataclass(frozen=True)
class DeviceIdentity:
    signing_key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def peer_id(self) -> str:
        return peer_id_from_public_key(self.public_key)


def peer_id_from_public_key(public_key: bytes) -> str:
    """The libp2p peer id of an Ed25519 public key (base58btc of an identity multihash).

    libp2p encodes the key as a protobuf ``PublicKey{Type: Ed25519 (1), Data: key}``; keys of 42
    bytes or less are embedded as an identity multihash (code 0x00) rather than hashed.
    """
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    protobuf = b"\x08\x01\x12\x20" + public_key
    return base58.b58encode(b"\x00" + bytes([len(protobuf)]) + protobuf).decode()


def _file_load(path: Path, kind: str) -> dict[str, Any]:
    try:
        raw = secret_file_read(path)
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path} does not exist") from exc
    except PermissionError as exc:
        raise KeyFileError(str(exc)) from exc
    try:
        doc = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is corrupt: not a CBOR document ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise KeyFileError(f"{path} is not a {kind} file")
    if doc.get("v") != FILE_VERSION:
        raise KeyFileError(
            f"{path} has format version {doc.get('v')!r}; this node reads version {FILE_VERSION}"
        )
    return doc


def _bytes_field(doc: dict[str, Any], name: str, size: int, path: Path) -> bytes:
    value = doc.get(name)
    if not isinstance(value, bytes) or len(value) != size:
        raise KeyFileError(f"{path} is corrupt: field {name!r} is not {size} bytes")
    return value


def device_key_ensure(data_dir: Path) -> DeviceIdentity:
    """Load the device key, creating it on first start."""
    path = data_dir / DEVICE_KEY_FILE
    if not path.exists():
        doc = {"v": FILE_VERSION, "kind": "sereus/device-key", "seed": nacl.utils.random(32)}
        secret_file_create(path, cbor2.dumps(doc, canonical=True))
    return device_key_load(data_dir)


def device_key_load(data_dir: Path) -> DeviceIdentity:
    path = data_dir / DEVICE_KEY_FILE
    doc = _file_load(path, "sereus/device-key")
    return DeviceIdentity(nacl.signing.SigningKey(_bytes_field(doc, "seed", 32, path)))


def master_secret_exists(data_dir: Path) -> bool:
    return (data_dir / MASTER_SECRET_FILE).exists()


def master_secret_is_sealed(data_dir: Path) -> bool:
    path = data_dir / MASTER_SECRET_FILE
    return "sealed" in _file_load(path, "sereus/master-secret")


def _seal(secret: bytes, passphrase: str, cost: PwhashCost) -> dict[str, Any]:
    opslimit, memlimit = _PWHASH_LIMITS[cost]
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit, memlimit
    )
    box = nacl.secret.SecretBox(key).encrypt(secret)
    return {"kdf": "argon2id", "salt": salt, "opslimit": opslimit, "memlimit": memlimit, "box": box}


def _unseal(sealed: Any, passphrase: str, path: Path) -> bytes:
    if not isinstance(sealed, dict) or sealed.get("kdf") != "argon2id":
        raise KeyFileError(f"{path}: unknown sealing scheme")
    opslimit, memlimit = sealed.get("opslimit"), sealed.get("memlimit")
    if not (
        isinstance(opslimit, int)
        and isinstance(memlimit, int)
        and 0 < opslimit <= _MAX_OPSLIMIT
        and 0 < memlimit <= _MAX_MEMLIMIT
    ):
        raise KeyFileError(f"{path} is corrupt: Argon2id limits out of range")
    salt = _bytes_field(sealed, "salt", nacl.pwhash.argon2id.SALTBYTES, path)
    box = sealed.get("box")
    if not isinstance(box, bytes):
        raise KeyFileError(f"{path} is corrupt: no sealed box")
    key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit, memlimit
    )
    try:
        secret = nacl.secret.SecretBox(key).decrypt(box)
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassphrase("the passphrase does not open the master secret") from exc
    if len(secret) != SECRET_SIZE:
        raise KeyFileError(f"{path} is corrupt: the sealed secret is not {SECRET_SIZE} bytes")
    return secret


def _master_doc(secret: bytes, passphrase: str | None, cost: PwhashCost) -> bytes:
    doc: dict[str, Any] = {"v": FILE_VERSION, "kind": "sereus/master-secret"}
    if passphrase:
        doc["sealed"] = _seal(secret, passphrase, cost)
    else:
        doc["secret"] = secret
    return cbor2.dumps(doc, canonical=True)


def master_secret_create(
    data_dir: Path, secret: bytes, *, passphrase: str | None = None, cost: PwhashCost = "moderate"
) -> None:
    """Store the master secret; refuses to overwrite one that exists."""
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"the master secret is {SECRET_SIZE} bytes")
    if not secret_file_create(data_dir / MASTER_SECRET_FILE, _master_doc(secret, passphrase, cost)):
        raise KeyFileError("this node already has a master secret")


def master_secret_replace(data_dir: Path, secret: bytes) -> None:
    """Store ``secret`` in place of the master secret this node has, if any (atomically, mode
    0600, unsealed). Only for a node that joins another device of its person
    (``apps.cadre.link``): it has no threads of its own, so its old secret guards nothing, and
    from then on it acts for the person whose secret it receives."""
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"the master secret is {SECRET_SIZE} bytes")
    secret_file_replace(data_dir / MASTER_SECRET_FILE, _master_doc(secret, None, "moderate"))


def master_secret_load(data_dir: Path, *, passphrase: str | None = None) -> bytes:
    path = data_dir / MASTER_SECRET_FILE
    doc = _file_load(path, "sereus/master-secret")
    if "sealed" in doc:
        if not passphrase:
            raise PassphraseRequired("the master secret is sealed with a passphrase")
        return _unseal(doc["sealed"], passphrase, path)
    return _bytes_field(doc, "secret", SECRET_SIZE, path)


def master_secret_reseal(
    data_dir: Path,
    *,
    old_passphrase: str | None,
    new_passphrase: str | None,
    cost: PwhashCost = "moderate",
) -> None:
    """Set, change or (with ``new_passphrase=None``) remove the passphrase."""
    secret = master_secret_load(data_dir, passphrase=old_passphrase)
    secret_file_replace(data_dir / MASTER_SECRET_FILE, _master_doc(secret, new_passphrase, cost))


_BIP39 = Mnemonic("english")


def recovery_phrase_from_secret(secret: bytes) -> str:
    """The 24 BIP39 words that encode a 32-byte master secret (with its checksum)."""
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"the master secret is {SECRET_SIZE} bytes")
    return _BIP39.to_mnemonic(secret)


def recovery_phrase_to_secret(phrase: str) -> bytes:
    """Parse a recovery phrase typed by a person: case and spacing do not matter."""
    words = phrase.lower().split()
    if len(words) != 24:
        raise RecoveryPhraseError(f"a recovery phrase has 24 words, this one has {len(words)}")
    unknown = [w for w in words if w not in _BIP39.wordlist]
    if unknown:
        raise RecoveryPhraseError(f"not in the BIP39 word list: {', '.join(unknown[:5])}")
    normalized = " ".join(words)
    if not _BIP39.check(normalized):
        raise RecoveryPhraseError("the checksum does not match: a word is wrong or out of order")
    return bytes(_BIP39.to_entropy(normalized))


def secret_fingerprint(secret: bytes) -> str:
    """A short, non-reversible tag of a secret, safe to show (e.g. to compare two nodes)."""
    return hashlib.blake2b(secret, digest_size=8, person=b"sereus-fprint").hexdigest()
