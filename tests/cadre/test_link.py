"""Device links: the link's format, the inviting node's claim and certify (called as the LINK
protocol's handler with a second node's keys), the joining node's local checks and its worker
step, and ``identity.master_secret_replace``."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import stat
from datetime import timedelta

import nacl.signing
import nacl.utils
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.cadre import control, link, link_join, wire
from apps.cadre import keys as cadre_keys
from apps.cadre.models import DeviceLink, PartyDevice, PendingJoin, SyncProgress
from apps.core import identity
from apps.core.thread import codec
from apps.core.thread import keys as thread_keys
from apps.core.threads import services as thread_services
from apps.p2p.app_protocols import AppRefused


def new_device() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def claim(data: link.LinkData, device: nacl.signing.SigningKey, *, seed: bytes | None = None):
    sig = cadre_keys.link_proof_sign(
        seed or data.seed, step="claim", requester=pub(device), responder=control.this_device()
    )
    raw = link.serve(pub(device), wire.encode({"op": "claim", "link": data.id, "sig": sig}))
    return wire.decode(raw, max_size=1 << 20)


def certify(data: link.LinkData, device: nacl.signing.SigningKey, proofs: list[dict], **extra):
    sig = cadre_keys.link_proof_sign(
        data.seed, step="certify", requester=pub(device), responder=control.this_device()
    )
    doc = {"op": "certify", "link": data.id, "sig": sig, "proofs": proofs, **extra}
    return wire.decode(link.serve(pub(device), wire.encode(doc)), max_size=1 << 20)


def proofs_for(device: nacl.signing.SigningKey, threads: list[dict]) -> list[dict]:
    return [
        {
            "thread": t["thread"],
            "proof": thread_keys.device_proof_sign(device, t["thread"], t["member"]),
        }
        for t in threads
    ]


def foreign_link(**changes) -> link.LinkData:
    """A link as another node would make it (its own peer id)."""
    data = link.LinkData(
        id=nacl.utils.random(16),
        seed=nacl.utils.random(32),
        kind="full",
        peer=identity.peer_id_from_public_key(pub(new_device())),
        addrs=("/ip4/127.0.0.1/tcp/9",),
        name="Laptop",
        expires_ms=link.now_ms() + 600_000,
    )
    return dataclasses.replace(data, **changes)


# -- the link ------------------------------------------------------------------------------------


def test_a_link_round_trips_and_keeps_only_the_public_key(node) -> None:
    made = link.link_create(kind="full", label="  My   phone ")
    data = link.link_parse(made.link)
    assert made.link.startswith("sereus:device/")
    assert data.id.hex() == made.id
    assert data.kind == "full"
    assert data.name == "My phone"
    assert data.peer == identity.peer_id_from_public_key(control.this_device())
    assert link.device_of_peer(data.peer) == control.this_device()
    row = DeviceLink.objects.get(pk=made.id)
    assert row.public_key == data.public_key.hex()
    assert data.seed.hex() not in str(vars(row))
    left = made.expires_at - timezone.now()
    assert timedelta(minutes=9) < left <= timedelta(minutes=10)
    # The https form, and a link wrapped across lines by a mail program.
    assert link.link_parse(data.https_link("node.example")) == data
    assert link.link_parse(made.link[:40] + "\n  " + made.link[40:]) == data
    assert control.control_thread() is not None  # made on the first link


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", link.NOT_A_LINK),
        ("hello", link.NOT_A_LINK),
        ("sereus:invite/AAAA", link.NOT_A_LINK),
        ("sereus:dev", link.DAMAGED),
        ("sereus:device/", link.DAMAGED),
        ("sereus:device/@@@@", link.DAMAGED),
        ("sereus:device/AAAAA", link.DAMAGED),
        ("sereus:device/" + "A" * 5000, "far longer"),
        (None, link.NOT_A_LINK),
    ],
)
def test_garbage_is_told_in_words(db, text, words) -> None:
    with pytest.raises(link.LinkError) as caught:
        link.link_parse(text)
    assert words in caught.value.words
    assert caught.value.code == "invalid"


def _encoded(doc: dict) -> str:
    return "sereus:device/" + base64.urlsafe_b64encode(codec.encode(doc)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"kind": "admin"},
        {"seed": b"short"},
        {"peer": "QmNotAnEd25519Key"},
        {"addrs": ["/ip4/1.2.3.4/tcp/1"] * 20},
        {"exp": -1},
    ],
)
def test_a_link_with_a_bad_field_is_damaged(db, change) -> None:
    good = foreign_link()
    doc = {
        "v": 1,
        "id": good.id,
        "seed": good.seed,
        "kind": "full",
        "peer": good.peer,
        "addrs": list(good.addrs),
        "name": "x",
        "exp": good.expires_ms,
    }
    assert link.link_parse(_encoded(doc)).id == good.id
    with pytest.raises(link.LinkError, match="damaged"):
        link.link_parse(_encoded({**doc, **change}))


def test_a_bad_kind_or_label_is_refused(node) -> None:
    with pytest.raises(link.LinkError):
        link.link_create(kind="owner")
    with pytest.raises(link.LinkError, match="plain text"):
        link.link_create(label="x" * 200)


# -- the inviting node's side ----------------------------------------------------------------------


def test_claim_answers_the_threads_and_the_secret_and_certify_certifies_everywhere(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    data = link.link_parse(link.link_create(label="Laptop").link)
    device = new_device()
    answer = claim(data, device)
    secret = control.master_secret()
    assert answer["kind"] == "full"
    assert answer["master"] == secret
    assert answer["party"] == cadre_keys.party_id(secret)
    threads = answer["threads"]
    assert [t["thread"] for t in threads] == [control.control_thread().thread, chat.thread]
    assert threads[1]["member"] == pub(thread_keys.member_key(secret, chat.thread))
    # The joining node's own check of the answer passes.
    checked = link_join._claim_check(answer, data)
    assert checked.master == secret
    assert checked.threads[0]["control"]
    got = certify(data, device, proofs_for(device, threads), addrs=["/ip4/10.0.0.2/tcp/4001"])
    assert got["certified"] == [t["thread"] for t in threads]
    for thread in (control.control_thread(), chat):
        assert control.certified(thread, pub(device))
    row = next(d for d in control.party_devices() if d.device == pub(device).hex())
    assert (row.kind, row.label, row.addrs) == ("full", "Laptop", ["/ip4/10.0.0.2/tcp/4001"])
    # A retry of both by the same device is fine (its answer was lost).
    assert claim(data, device)["master"] == secret
    assert certify(data, device, proofs_for(device, threads))["certified"]


def test_a_mirror_link_gives_no_secret(node) -> None:
    data = link.link_parse(link.link_create(kind="mirror").link)
    device = new_device()
    answer = claim(data, device)
    assert "master" not in answer
    assert answer["kind"] == "mirror"
    certify(data, device, proofs_for(device, answer["threads"]))
    row = next(d for d in control.party_devices() if d.device == pub(device).hex())
    assert row.kind == PartyDevice.Kind.MIRROR


def test_another_device_cannot_reuse_a_link(node) -> None:
    data = link.link_parse(link.link_create().link)
    claim(data, new_device())
    with pytest.raises(AppRefused, match="used by another device"):
        claim(data, new_device())


def test_an_expired_link_is_refused(node) -> None:
    data = link.link_parse(link.link_create().link)
    DeviceLink.objects.filter(pk=data.id.hex()).update(expires_at=timezone.now())
    with pytest.raises(AppRefused, match="expired"):
        claim(data, new_device())


def test_a_forged_link_proof_is_refused(node) -> None:
    data = link.link_parse(link.link_create().link)
    device = new_device()
    with pytest.raises(AppRefused, match="does not verify"):
        claim(data, device, seed=nacl.utils.random(32))
    # A proof made for another node (another responder) does not open this one either.
    sig = cadre_keys.link_proof_sign(
        data.seed, step="claim", requester=pub(device), responder=pub(new_device())
    )
    with pytest.raises(AppRefused, match="does not verify"):
        link.serve(pub(device), wire.encode({"op": "claim", "link": data.id, "sig": sig}))
    # Nor one from the device that holds the link, shown by another device.
    sig = cadre_keys.link_proof_sign(
        data.seed, step="claim", requester=pub(device), responder=control.this_device()
    )
    with pytest.raises(AppRefused, match="does not verify"):
        link.serve(pub(new_device()), wire.encode({"op": "claim", "link": data.id, "sig": sig}))
    assert not DeviceLink.objects.get(pk=data.id.hex()).used_by


def test_an_unknown_link_and_garbage_are_refused(node) -> None:
    link.link_create()
    with pytest.raises(AppRefused, match="not one this node made"):
        claim(foreign_link(), new_device())
    for raw in (b"", b"\xff\x00", wire.encode({"op": "drop"}), codec.encode({"v": 9})):
        with pytest.raises(AppRefused):
            link.serve(pub(new_device()), raw)


def test_a_proof_for_the_wrong_thread_is_refused_and_nothing_is_certified(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    thread_services.thread_create(name="Other")
    data = link.link_parse(link.link_create().link)
    device = new_device()
    threads = claim(data, device)["threads"]
    proofs = proofs_for(device, threads)
    # The proof made for "Other" handed in for "Chat".
    chat_at = next(i for i, t in enumerate(threads) if t["thread"] == chat.thread)
    other_at = next(i for i, t in enumerate(threads) if t["name"] == "Other")
    proofs[chat_at] = {"thread": chat.thread, "proof": proofs[other_at]["proof"]}
    with pytest.raises(AppRefused, match="does not verify"):
        certify(data, device, proofs)
    # Another device's proof (signed by someone else's key) neither.
    with pytest.raises(AppRefused, match="does not verify"):
        certify(data, device, proofs_for(new_device(), threads))
    assert not any(control.certified(t, pub(device)) for t in [control.control_thread(), chat])


def test_certify_needs_the_claim_and_the_device_list(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    data = link.link_parse(link.link_create().link)
    device = new_device()
    with pytest.raises(AppRefused, match="Claim this device link"):
        certify(data, device, [])
    threads = claim(data, device)["threads"]
    with pytest.raises(AppRefused, match="device list"):
        certify(data, device, proofs_for(device, threads[1:]))
    stranger = [{"thread": nacl.utils.random(32), "proof": nacl.utils.random(64)}]
    with pytest.raises(AppRefused, match="not one of yours"):
        certify(data, device, stranger)
    assert not control.certified(chat, pub(device))


def test_the_joining_node_refuses_an_answer_that_does_not_match_the_secret(node) -> None:
    thread_services.thread_create(name="Chat")
    data = link.link_parse(link.link_create().link)
    answer = claim(data, new_device())
    answer["threads"][1]["member"] = pub(new_device())
    with pytest.raises(link_join._Refused, match="does not match its recovery secret"):
        link_join._claim_check(answer, data)
    with pytest.raises(link_join._Refused, match="does not match the link"):
        link_join._claim_check({**answer, "kind": "mirror"}, data)


# -- the joining node's side -----------------------------------------------------------------------


def test_join_start_refuses_a_node_with_threads_of_its_own(node) -> None:
    thread_services.thread_create(name="Mine")
    with pytest.raises(link.LinkError) as caught:
        link.join_start(link=foreign_link().text())
    assert caught.value.words == link.NOT_FRESH


def test_join_start_checks_the_link_here(node, settings) -> None:
    with pytest.raises(link.LinkError, match="expired"):
        link.join_start(link=foreign_link(expires_ms=link.now_ms() - 1).text())
    with pytest.raises(link.LinkError, match="SEREUS_MIRROR"):
        link.join_start(link=foreign_link(kind="mirror").text())
    mine = identity.peer_id_from_public_key(control.this_device())
    with pytest.raises(link.LinkError, match="made on this node"):
        link.join_start(link=foreign_link(peer=mine).text())
    text = foreign_link().text()
    join = link.join_start(link=text)
    assert join.state == PendingJoin.State.PENDING
    assert join.kind == "full"
    assert link.join_start(link=text).pk == join.pk  # the same link again: the same join
    with pytest.raises(link.LinkError, match="joining your other device already"):
        link.join_start(link=foreign_link().text())
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    PendingJoin.objects.all().delete()
    with pytest.raises(link.LinkError, match="is a mirror"):
        link.join_start(link=foreign_link().text())


def test_join_step_retries_an_unreachable_device_then_ends_when_the_link_expires(node) -> None:
    join = link.join_start(link=foreign_link().text())
    link.join_step()
    join.refresh_from_db()
    assert join.state == PendingJoin.State.PENDING
    assert join.attempts == 1
    assert "cannot be reached" in join.problem
    link.join_step()  # backing off: not tried again at once
    join.refresh_from_db()
    assert join.attempts == 1
    expired = foreign_link(expires_ms=link.now_ms() - 1).text()
    PendingJoin.objects.filter(pk=join.pk).update(
        link=expired, updated_at=timezone.now() - timedelta(minutes=5)
    )
    link.join_step()
    join.refresh_from_db()
    assert join.state == PendingJoin.State.FAILED
    assert join.problem == link.EXPIRED
    assert join.link == ""  # the link's secret is not kept
    assert not SyncProgress.objects.exists()


def test_a_damaged_stored_link_ends_the_join(node) -> None:
    join = link.join_start(link=foreign_link().text())
    PendingJoin.objects.filter(pk=join.pk).update(link="sereus:device/garbage!")
    link.join_step()
    join.refresh_from_db()
    assert join.state == PendingJoin.State.FAILED
    assert "damaged" in join.problem


# -- the master secret file ----------------------------------------------------------------------


def test_master_secret_replace_is_atomic_and_private(data_dir) -> None:
    first, second = nacl.utils.random(32), nacl.utils.random(32)
    identity.master_secret_create(data_dir, first, passphrase="pw", cost="interactive")
    identity.master_secret_replace(data_dir, second)
    assert identity.master_secret_load(data_dir) == second
    path = data_dir / identity.MASTER_SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(data_dir) if p.startswith(".")]  # no temp file left
    with pytest.raises(ValueError, match="32 bytes"):
        identity.master_secret_replace(data_dir, b"short")
    assert identity.master_secret_load(data_dir) == second


def test_a_mirror_serves_no_device_links(node, settings) -> None:
    data = link.link_parse(link.link_create().link)
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    with pytest.raises(AppRefused, match="A mirror makes no device links"):
        claim(data, new_device())
    with pytest.raises(link.LinkError, match="A mirror cannot add devices"):
        link.link_create()


def test_node_join_command_queues_the_join_and_says_what_next(node) -> None:
    out = io.StringIO()
    call_command("node_join", foreign_link().text(), stdout=out)
    assert "another device of yours" in out.getvalue()
    assert "Start the node (make run); it joins your other device on start." in out.getvalue()
    assert PendingJoin.objects.get().state == PendingJoin.State.PENDING
    with pytest.raises(CommandError, match="not a device link"):
        call_command("node_join", "https://example.com/join#abc")


def test_a_certified_join_keeps_fetching_after_the_link_expired(node) -> None:
    join = link.join_start(link=foreign_link().text())
    thread = nacl.utils.random(32)
    SyncProgress.objects.create(run="join", thread_id=thread.hex(), name="Family", control=True)
    expired = foreign_link(expires_ms=link.now_ms() - 1).text()
    PendingJoin.objects.filter(pk=join.pk).update(link=expired, state=PendingJoin.State.FETCHING)
    link.join_step()  # the other device is away: not fetched, tried again later
    join.refresh_from_db()
    assert join.state == PendingJoin.State.FETCHING
    assert "Not fetched yet: Family" in join.problem
    assert SyncProgress.objects.get().state == SyncProgress.State.FAILED
    PendingJoin.objects.filter(pk=join.pk).update(
        attempts=link_join.MAX_ATTEMPTS - 1, updated_at=timezone.now() - timedelta(minutes=5)
    )
    link.join_step()  # the last try
    join.refresh_from_db()
    assert join.state == PendingJoin.State.FAILED
    assert join.link == ""


def test_a_mirror_link_claim_names_no_thread_and_no_app(node) -> None:
    """The mirror keeps ciphertext only: the claim answer does not tell it what a thread is."""
    import nacl.signing

    from apps.cadre import keys as cadre_keys
    from apps.cadre import link, wire
    from apps.core.threads import services as thread_services

    thread_services.thread_create(name="Diary")
    created = link.link_create(kind="mirror", label="Home mirror")
    data = link.link_parse(created.link)
    mirror = nacl.signing.SigningKey.generate()
    mirror_pub = bytes(mirror.verify_key)
    from apps.cadre import control

    sig = cadre_keys.link_proof_sign(
        data.seed, step="claim", requester=mirror_pub, responder=control.this_device()
    )
    answer = wire.decode(
        link.serve(mirror_pub, wire.encode({"op": "claim", "link": data.id, "sig": sig})),
        max_size=1 << 20,
    )
    assert "master" not in answer
    assert {(t["name"], t["app"]) for t in answer["threads"]} == {("", "")}
