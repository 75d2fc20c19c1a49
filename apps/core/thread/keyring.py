"""The epoch keys a replica holds, and opening op bodies with them.

Keys are discovered from every keys op sealed to one of our member keys, accepted or not. A key
counts only if it matches the public check value of the keys op it belongs to
(``keys.check_value``): a rotator that seals a wrong secret to some members gives them *no key*
(their replicas see the epoch's ops as opaque), never a different key that would make them
decide differently from the others. Such a seal is kept as a **bad seal** (the keys op, signed
by its author's device, is the evidence) so the member's node can say who sent it.

Since every key used matches the check, all replicas that can open a body open it with the same
key: a body that does not open with it is refused by all of them alike; a replica without the
key leaves the op **opaque** (no effect, decided again when a key arrives).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apps.core.thread import codec, crypto, keys
from apps.core.thread import payloads as p
from apps.core.thread.op import KIND_KEYS, Op
from apps.core.thread.store import Decision

MAX_PAYLOAD = 1 << 20
# Body bytes of keys ops parsed on arrival and kept for the fold (``Keyring._arrived``): a
# frame's worth (a 256-op frame of a 200-member thread's admissions holds ~12 MB of them).
ARRIVED_BYTES = 16 << 20
DATA_CACHE = 8192  # decrypted data payloads kept (control payloads are all kept: folds reuse them)


def refused(reason: str) -> Decision:
    return Decision("refused", reason)


@dataclass(frozen=True)
class BadSeal:
    """A keys op whose sealed box for one of our member keys did not hold its epoch's key."""

    keys_op: bytes  # hash of the keys op
    device: bytes  # its author's device
    member: bytes  # our member key it was sealed to


class Keyring:
    """Keys by the hash of the keys op that made each epoch (see the module docstring)."""

    def __init__(self, thread: bytes, member_keys: Iterable = ()) -> None:
        self.thread = thread
        self.members = {bytes(k.verify_key): k for k in member_keys}
        self.by_keys_op: dict[bytes, list[keys.EpochKeys]] = {}
        self.bad_seals: list[BadSeal] = []
        self._opened: set[bytes] = set()
        # Keys ops parsed on arrival (``learn``) and not yet judged, by op hash, oldest first:
        # the fold (``Opener.keys``) takes its payload from here instead of parsing it again (a
        # seal per member: a large thread's keys op is hundreds of kB). Bounded by body bytes:
        # an op that is never admitted (a stranger's) is parsed and learned from, never kept.
        self._arrived: OrderedDict[bytes, tuple[p.Keys | str, int]] = OrderedDict()
        self._arrived_bytes = 0

    def add(self, keys_op: bytes, epoch_keys: keys.EpochKeys) -> bool:
        known = self.by_keys_op.setdefault(keys_op, [])
        if any(k.control == epoch_keys.control and k.data == epoch_keys.data for k in known):
            return False
        # Full keys (with the data key) first: they open everything a control-only grant does.
        known.append(epoch_keys)
        known.sort(key=lambda k: k.data is None)
        return True

    def payload(self, op: Op) -> p.Keys | str:
        """A keys op's payload, or why it is not a valid one (the body is not encrypted): the
        one parsed when the op arrived, if still held (it is then let go: the caller keeps it)."""
        found = self._arrived.pop(op.hash, None)
        if found is None:
            return _keys_payload(op)
        self._arrived_bytes -= found[1]
        return found[0]

    def _arrival(self, op: Op) -> p.Keys | str:
        parsed = _keys_payload(op)  # ``learn`` sees each op once (``_opened``)
        if len(op.body) <= ARRIVED_BYTES and op.hash not in self._arrived:
            self._arrived[op.hash] = (parsed, len(op.body))
            self._arrived_bytes += len(op.body)
            while self._arrived_bytes > ARRIVED_BYTES:
                _, (_, size) = self._arrived.popitem(last=False)
                self._arrived_bytes -= size
        return parsed

    def forget_opened(self) -> None:
        """Open every keys op again on the next ``learn`` (after a member key was added)."""
        self._opened.clear()

    def learn(self, op: Op) -> set[bytes]:
        """Open the seals of a keys op addressed to us; the keys ops we learned keys for."""
        if op.kind != KIND_KEYS or op.hash in self._opened or not self.members:
            return set()
        self._opened.add(op.hash)
        parsed = self._arrival(op)
        if isinstance(parsed, str):
            return set()
        learned: set[bytes] = set()
        for member, signing_key in self.members.items():
            box = parsed.seals.get(member)
            if box is None:
                continue
            try:
                secret, grants = p.grants_parse(
                    codec.decode(
                        crypto.unseal(signing_key, box), max_size=MAX_PAYLOAD, canonical=False
                    )
                )
            except (crypto.CryptoError, codec.DecodeError, p.PayloadError):
                self.bad_seals.append(BadSeal(op.hash, op.device, member))
                continue
            epoch_keys = keys.EpochKeys.from_secret(self.thread, parsed.epoch, secret)
            if epoch_keys.matches(parsed.check) != (True, True):
                self.bad_seals.append(BadSeal(op.hash, op.device, member))
                continue
            if self.add(op.hash, epoch_keys):
                learned.add(op.hash)
            # Older epochs' keys: checked against their own keys op when used (``Opener``).
            for grant in grants:
                if self.add(grant.keys_op, keys.EpochKeys(grant.epoch, grant.control, grant.data)):
                    learned.add(grant.keys_op)
        return learned


def _keys_payload(op: Op) -> p.Keys | str:
    try:
        return p.keys_parse(codec.decode(op.body, max_size=MAX_PAYLOAD, canonical=False))
    except (codec.DecodeError, p.PayloadError) as exc:
        return f"keys payload: {exc}"


@dataclass(frozen=True)
class KeysEvent:
    """An accepted keys op: the epoch it starts, its check value and whom it was sealed to."""

    op: Op
    epoch: int
    check: bytes
    sealed: frozenset[bytes]


class Opener:
    """Opens and parses op bodies for one replica, remembering what opened.

    A body opens the same way every time (the AEAD authenticates it), so folds that run again
    after each control op do not decrypt and parse again. Failures are not remembered: a key
    learned later may open the body. Data payloads are kept in a bounded cache.
    """

    def __init__(self, thread: bytes, keyring: Keyring) -> None:
        self.thread = thread
        self.keyring = keyring
        self._opened: dict[tuple[bytes, bytes], object] = {}
        self._data: OrderedDict[tuple[bytes, bytes], object] = OrderedDict()
        self._verified: dict[tuple[bytes, ...], bool] = {}
        self._matching: dict[tuple[bytes, bytes, bytes | None], tuple[bool, bool]] = {}

    def _keys_for(self, event: KeysEvent, *, data: bool) -> list[bytes]:
        """The keys of ``event``'s epoch we hold that match its check value."""
        found = []
        for epoch_keys in self.keyring.by_keys_op.get(event.op.hash, ()):
            cache_key = (event.op.hash, epoch_keys.control, epoch_keys.data)
            match = self._matching.get(cache_key)
            if match is None:
                match = self._matching[cache_key] = epoch_keys.matches(event.check)
            if data and match[1]:
                found.append(epoch_keys.data)  # type: ignore[arg-type]
            elif not data and match[0]:
                found.append(epoch_keys.control)
        return found

    def has_key(self, event: KeysEvent, *, data: bool) -> bool:
        return bool(self._keys_for(event, data=data))

    def _open(
        self, op: Op, candidates: list[KeysEvent], *, data: bool
    ) -> tuple[bytes, KeysEvent] | Decision:
        """The body's plaintext and the keys event whose key opened it."""
        aad = op.header_bytes()
        missing = False
        for event in candidates:
            keys_ = self._keys_for(event, data=data)
            missing |= not keys_
            for key in dict.fromkeys(keys_):
                try:
                    return crypto.aead_decrypt(key, op.body, aad), event
                except crypto.CryptoError:
                    continue
        if missing:
            # Concurrent rotations can share an epoch number: the body may be sealed with the
            # key of one whose key this node does not hold (yet). Refusing now would refuse
            # what a replica holding that key accepts.
            return Decision("opaque", f"no key for epoch {op.epoch} on this node")
        # The keys match the epoch's public checks: every replica holding them fails alike.
        return refused(f"the body does not open with the key of epoch {op.epoch}")

    def _cached(self, op: Op, candidates: list[KeysEvent], cache: dict) -> object | None:
        for event in candidates:
            hit = cache.get((op.hash, event.op.hash))
            if hit is not None:
                return hit
        return None

    def _parsed(self, op: Op, candidates: list[KeysEvent], *, data: bool, parse, what: str):
        cache = self._data if data else self._opened
        hit = self._cached(op, candidates, cache)
        if hit is not None:
            return hit
        opened = self._open(op, candidates, data=data)
        if isinstance(opened, Decision):
            return opened
        plain, event = opened
        try:
            result: object = parse(codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False))
        except (codec.DecodeError, p.PayloadError) as exc:
            result = refused(f"{what} payload: {exc}")
        # Only under the keys event whose key opened it: the candidates can change (a keys op
        # refused once the control order is known), and a later lookup with the others alone
        # must not find what only this key opened.
        self._remember(cache, (op.hash, event.op.hash), result)
        return result

    def _remember(self, cache: dict, key: tuple[bytes, bytes], value: object) -> None:
        cache[key] = value
        if cache is self._data and len(self._data) > DATA_CACHE:
            self._data.popitem(last=False)

    def prime(self, op: Op, keys_op: bytes, value: object) -> None:
        """Remember what a body this process just sealed says (its own write), so checking the
        op does not decrypt and parse it again."""
        cache = self._data if isinstance(value, p.DataPayload) else self._opened
        self._remember(cache, (op.hash, keys_op), value)

    def control(self, op: Op, candidates: list[KeysEvent]) -> p.Control | Decision:
        return self._parsed(op, candidates, data=False, parse=p.control_parse, what="control")  # type: ignore[return-value]

    def data(self, op: Op, candidates: list[KeysEvent]) -> p.DataPayload | Decision:
        return self._parsed(op, candidates, data=True, parse=p.data_parse, what="data")  # type: ignore[return-value]

    def verified(self, check: Callable[[], None], *key: bytes) -> bool:
        """Run a signature check once per distinct input; True if it verifies."""
        if key not in self._verified:
            try:
                check()
                self._verified[key] = True
            except crypto.CryptoError:
                self._verified[key] = False
        return self._verified[key]

    def keys(self, op: Op) -> p.Keys | Decision:
        hit = self._opened.get((op.hash, b""))
        if hit is None:
            parsed = self.keyring.payload(op)
            hit = refused(parsed) if isinstance(parsed, str) else parsed
            self._opened[(op.hash, b"")] = hit
        return hit  # type: ignore[return-value]
