"""The holder's store: shares kept on disk within the party's quota, counted once, checked
when read, freed when released."""

from __future__ import annotations

import stat
import threading

import nacl.utils
import pytest
from django.db import connection

from apps.storage import held, keys
from apps.storage.models import HeldParty, HeldShare
from apps.storage.space import StorageError

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1 << 20


def test_a_share_over_the_quota_is_refused_in_words_and_nothing_is_kept(node) -> None:
    party = held.own_party()
    HeldParty.objects.filter(pk=party.pk).update(quota=200 * MB, used=199 * MB)
    share = nacl.utils.random(3 * MB)
    with pytest.raises(StorageError) as caught:
        held.held_put(party, share)
    assert caught.value.code == "full"
    assert caught.value.words == (
        "This node keeps at most 200 MB of your backups and 199 MB are used: "
        "it cannot take 3 MB more."
    )
    assert not HeldShare.objects.exists()
    assert HeldParty.objects.get(pk=party.pk).used == 199 * MB
    assert not held.path_of(party, keys.share_digest(share)).exists()


def test_the_same_share_twice_costs_nothing_more(node) -> None:
    party = held.own_party()
    share = nacl.utils.random(5000)
    first = held.held_put(party, share)
    second = held.held_put(party, share)
    assert first == second == keys.share_digest(share)
    assert held.held_usage(party) == {"used": 5000, "quota": party.quota, "shares": 1}
    assert held.held_get(party, first) == share


def test_a_damaged_file_reads_as_missing_and_a_new_put_mends_it(node, caplog) -> None:
    party = held.own_party()
    share = nacl.utils.random(4000)
    digest = held.held_put(party, share)
    path = held.path_of(party, digest)
    path.write_bytes(share[:-1] + bytes([share[-1] ^ 1]))
    assert held.held_get(party, digest) is None
    assert held.held_audit(party, digest, b"n" * 32) is None
    assert digest.hex()[:12] in caplog.text
    assert digest.hex() not in caplog.text
    held.held_put(party, share)  # the owner's repair puts the same share again
    assert held.held_get(party, digest) == share
    assert held.held_usage(party)["used"] == 4000  # mended, not counted twice


def test_an_audit_needs_the_share(node) -> None:
    party = held.own_party()
    share = nacl.utils.random(3000)
    digest = held.held_put(party, share)
    nonce = nacl.utils.random(32)
    assert held.held_audit(party, digest, nonce) == keys.audit_answer(nonce, share)
    assert held.held_audit(party, b"\x01" * 32, nonce) is None


def test_a_release_frees_the_bytes_and_deletes_the_file(node) -> None:
    party = held.own_party()
    shares = [nacl.utils.random(1000 + i) for i in range(3)]
    digests = [held.held_put(party, share) for share in shares]
    assert held.held_release(party, [digests[0], digests[2], b"\x02" * 32]) == 2
    assert held.held_usage(party) == {"used": 1001, "quota": party.quota, "shares": 1}
    assert not held.path_of(party, digests[0]).exists()
    assert held.held_get(party, digests[1]) == shares[1]
    assert held.held_release(party, [digests[0]]) == 0  # twice: nothing more is freed


def test_files_and_folders_are_the_holders_alone(node) -> None:
    party = held.own_party()
    digest = held.held_put(party, nacl.utils.random(100))
    path = held.path_of(party, digest)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent, held.root()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_puts_count_each_share_once_and_never_pass_the_quota(node) -> None:
    party = held.own_party()
    HeldParty.objects.filter(pk=party.pk).update(quota=10_000)
    shares = [nacl.utils.random(1000) for _ in range(14)]  # room for ten of them
    refused: list[str] = []
    lock = threading.Lock()

    def putter(mine: list[bytes]) -> None:
        try:
            for share in mine:
                try:
                    held.held_put(party, share)
                except StorageError as exc:
                    with lock:
                        refused.append(exc.code)
        finally:
            connection.close()

    # Every thread puts every share (in its own order): duplicates race as well as the quota.
    workers = [
        threading.Thread(target=putter, args=(shares[i:] + shares[:i],)) for i in range(0, 12, 3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rows = HeldShare.objects.filter(party=party)
    assert rows.count() == 10
    assert HeldParty.objects.get(pk=party.pk).used == sum(row.size for row in rows) == 10_000
    assert set(refused) == {"full"}
    for row in rows:
        assert held.held_get(party, bytes.fromhex(row.digest)) is not None
