"""The devices pages (issue 17 §5), in process: the list in words, adding a device with a link
and its QR code shown once, what became of the link, removing a device after the confirm step,
the join and recovery progress, the mirror's own page, and the claim page of a new node that is
"another device of mine". Hostile input (garbage links, forged removals) gets words."""

from __future__ import annotations

import dataclasses
import re
import secrets
from datetime import timedelta
from html import unescape

import nacl.signing
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.cadre import control
from apps.cadre.link import LinkData, now_ms
from apps.cadre.models import DeviceLink, PartyDevice, PendingJoin, SyncProgress
from apps.core import identity
from apps.core import services as node_services
from apps.core.models import Node
from apps.core.thread import keys
from apps.core.threads import services as thread_services
from apps.core.threads.qr import qr_svg
from tests.checklist.conftest import browser, owner_user  # noqa: F401 - fixtures
from tests.conftest import OWNER_PASSWORD

DEVICES = "/node/devices/"
HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{12,}(?![0-9A-Za-z])")


def visible(html: str) -> str:
    """The page's text outside folded parts (where a fingerprint may be shown)."""
    html = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    html = re.sub(r"<(script|style|svg|textarea)\b.*?</\1>", "", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def other_device(label: str = "Laptop", kind: str = PartyDevice.Kind.FULL) -> str:
    """Another device of this party, certified in every party thread as a join would."""
    key = nacl.signing.SigningKey.generate()
    device = bytes(key.verify_key)
    made = control.control_ensure()
    for thread in [made, *control.party_thread_records()]:
        proof = keys.device_proof_sign(key, thread.thread, bytes.fromhex(thread.member_id))
        control.certify(thread, device, proof)
    control.device_record(device=device, kind=kind, label=label)
    return device.hex()


def foreign_link(kind: str = "full", *, expires_in_ms: int = 600_000) -> str:
    """A device link as another node would make it (its peer id, its addresses)."""
    other = bytes(nacl.signing.SigningKey.generate().verify_key)
    return LinkData(
        id=secrets.token_bytes(16),
        seed=secrets.token_bytes(32),
        kind=kind,
        peer=identity.peer_id_from_public_key(other),
        addrs=("/ip4/127.0.0.1/tcp/4001",),
        name="",
        expires_ms=now_ms() + expires_in_ms,
    ).text()


@pytest.fixture
def chats(node) -> list:
    return [thread_services.thread_create(name=n) for n in ("Family", "Book club")]


# -- the list -------------------------------------------------------------------------------------


def test_the_devices_page_says_in_words_what_each_device_is(browser, chats) -> None:  # noqa: F811
    other_device("Laptop")
    page = browser.get(DEVICES)
    assert page.status_code == 200
    text = visible(page.content.decode())
    assert "This device" in text
    assert "open now" in text
    assert "Laptop" in text
    assert "another device of yours" in text
    assert "Recovery key" in text
    assert "Remove Laptop" in page.content.decode()  # the others can be removed, not this one
    assert page.content.decode().count("/remove/") == 1
    assert not HEX_ID.search(text), HEX_ID.search(text)
    # Per-thread sync, folded: each thread by its name.
    assert "Book club:" in page.content.decode()
    assert "Family:" in page.content.decode()
    # Devices is part of Settings.
    assert re.search(r'href="/node/settings/"[^>]*aria-current="page"', page.content.decode())


def test_a_node_with_no_devices_yet_offers_to_add_one(browser, node) -> None:  # noqa: F811
    page = browser.get(DEVICES)
    assert page.status_code == 200
    assert "Only this device so far" in page.content.decode()
    assert control.control_thread() is None  # looking makes nothing


def test_the_settings_page_leads_to_the_devices(browser, node) -> None:  # noqa: F811
    assert DEVICES in browser.get(reverse("core:settings")).content.decode()


# -- adding one -----------------------------------------------------------------------------------


def test_adding_a_device_shows_its_link_and_qr_code_once(browser, chats) -> None:  # noqa: F811
    page = browser.post(reverse("cadre:device_add"), {"kind": "full", "label": "Phone"})
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    link = re.search(r"(sereus:device/[A-Za-z0-9_-]+)", html).group(1)
    # The code on the page is exactly the link's (regenerated the same way).
    assert qr_svg(link) in html
    assert "Add a device: Phone" in html
    assert "data-expires=" in html
    assert "cadre/countdown.js" in html
    row = DeviceLink.objects.get()
    assert (row.kind, row.label) == ("full", "Phone")
    assert link not in str(row.__dict__)  # only the public half is kept
    # The page asks what became of the link: open for now.
    status_url = reverse("cadre:link_status", args=[row.id])
    assert status_url in html
    assert browser.get(status_url).status_code == 204
    DeviceLink.objects.filter(pk=row.pk).update(used_at=timezone.now(), used_by="ab" * 32)
    taken = browser.get(status_url)
    assert taken.status_code == 200
    assert "new device took the link" in taken.content.decode()


def test_an_unused_link_says_it_expired(browser, chats) -> None:  # noqa: F811
    browser.post(reverse("cadre:device_add"), {"kind": "mirror", "label": ""})
    row = DeviceLink.objects.get()
    assert row.kind == "mirror"
    DeviceLink.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    closed = browser.get(reverse("cadre:link_status", args=[row.id]))
    assert "This link has expired" in closed.content.decode()
    assert browser.get(reverse("cadre:link_status", args=["0" * 32])).status_code == 404


def test_a_forged_add_gets_words_and_no_link(browser, chats) -> None:  # noqa: F811
    bad_kind = browser.post(reverse("cadre:device_add"), {"kind": "owner", "label": "x"})
    assert bad_kind.status_code == 400
    assert "Select a valid choice" in bad_kind.content.decode()
    long_label = browser.post(reverse("cadre:device_add"), {"kind": "full", "label": "x" * 81})
    assert long_label.status_code == 400
    assert not DeviceLink.objects.exists()
    assert browser.get(reverse("cadre:device_add")).status_code == 405


def test_a_mirror_cannot_add_devices(browser, chats, settings) -> None:  # noqa: F811
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    page = browser.post(reverse("cadre:device_add"), {"kind": "full"}, follow=True)
    assert "A mirror cannot add devices" in page.content.decode()


# -- removing one ---------------------------------------------------------------------------------


def test_removing_a_device_says_what_it_does_then_does_it(browser, chats) -> None:  # noqa: F811
    laptop = other_device("Laptop")
    url = reverse("cadre:device_remove", args=[laptop])
    confirm = browser.get(url)
    assert confirm.status_code == 200
    text = visible(confirm.content.decode())
    assert "Remove Laptop?" in text
    assert "changes its keys" in text
    done = browser.post(url, follow=True)
    assert "Laptop is removed" in done.content.decode()
    row = next(d for d in control.party_devices(include_gone=True) if d.device == laptop)
    assert row.state == PartyDevice.State.REMOVED
    for thread in chats:
        assert not control.certified(thread, bytes.fromhex(laptop))
    # Gone from the list, listed apart; its page is no more.
    assert "Removed devices" in browser.get(DEVICES).content.decode()
    assert browser.get(url).status_code == 404


def test_a_forged_removal_is_refused_in_words(browser, chats) -> None:  # noqa: F811
    other_device("Laptop")
    me = control.this_device().hex()
    page = browser.get(reverse("cadre:device_remove", args=[me])).content.decode()
    assert "do it from another of your devices" in page
    assert 'class="danger"' not in page
    refused = browser.post(reverse("cadre:device_remove", args=[me]))
    assert refused.status_code == 400
    assert "Remove this device from another of your devices." in refused.content.decode()
    standby = control.standby_current().device
    refused = browser.post(reverse("cadre:device_remove", args=[standby]))
    assert "The recovery key cannot be removed" in refused.content.decode()
    for junk in ("ab" * 32, "not-a-key", "ff" * 400):
        assert browser.post(reverse("cadre:device_remove", args=[junk])).status_code == 404
    assert control.certified(chats[0], bytes.fromhex(me))


# -- joining and restoring ------------------------------------------------------------------------


def test_the_join_page_takes_a_link_and_shows_progress(browser, node) -> None:  # noqa: F811
    url = reverse("cadre:join")
    page = browser.get(url)
    assert page.status_code == 200
    assert "Paste the link" in page.content.decode()
    assert 'data-qr-prefix="sereus:device/"' in page.content.decode()
    link = foreign_link()
    # A chat app's line breaks in the pasted link do not matter.
    started = browser.post(url, {"link": link[:30] + "\n" + link[30:]})
    assert started.status_code == 302
    join = PendingJoin.objects.get()
    assert join.link == link
    SyncProgress.objects.create(run="join", thread_id="ab" * 32, name="Family", ops_fetched=12)
    page = browser.get(url).content.decode()
    assert "waiting to reach your other device" in page.lower()
    assert "Family" in page
    assert "12 changes" in page
    assert 'hx-get="/node/devices/join/live/"' in page  # it asks again while it runs
    assert "Paste the link" not in page
    live = browser.get(reverse("cadre:join_live")).content.decode()
    assert 'id="join-progress"' in live
    assert "hx-trigger" in live
    PendingJoin.objects.update(state="failed", problem="This device link has expired.")
    ended = browser.get(url).content.decode()
    assert "The join stopped" in ended
    assert "This device link has expired." in ended
    assert "hx-trigger" not in ended
    assert "Join again" in ended


def test_garbage_and_wrong_links_get_words(browser, chats) -> None:  # noqa: F811
    url = reverse("cadre:join")
    for junk, words in (
        ("hello", "This is not a device link"),
        ("sereus:device/!!!", "This device link is damaged"),
        ("sereus:invite/abc", "This is not a device link"),
        ("x" * 5000, "at most 4000 characters"),
        (foreign_link(expires_in_ms=-1000), "This device link has expired"),
        (foreign_link(), "This node already belongs to someone"),
        (foreign_link("mirror"), "start this node as a mirror"),
    ):
        page = browser.post(url, {"link": junk})
        assert page.status_code == 400, junk
        assert words in unescape(page.content.decode()), (junk, words)
    assert not PendingJoin.objects.exists()


def test_the_restore_page_shows_each_thread(browser, node) -> None:  # noqa: F811
    from apps.cadre.models import RestoreRun

    page = browser.get(reverse("cadre:restore")).content.decode()
    assert "No recovery under way" in page
    RestoreRun.objects.create(sources=[{"peer": "p", "addrs": []}], state="fetching")
    SyncProgress.objects.create(run="restore", thread_id="cd" * 32, name="Family", state="done")
    SyncProgress.objects.create(
        run="restore", thread_id="ab" * 32, name="", control=True, state="fetching"
    )
    page = browser.get(reverse("cadre:restore")).content.decode()
    assert "Bringing your threads back" in page
    assert "Fetching your threads" in page
    assert "Your device list" in page
    assert "Family" in page
    assert not HEX_ID.search(visible(page))
    live = browser.get(reverse("cadre:restore_live")).content.decode()
    assert 'id="restore-progress"' in live


def test_the_pages_need_the_owner(node) -> None:
    for url in (DEVICES, reverse("cadre:join"), reverse("cadre:restore")):
        assert Client().get(url).status_code == 302


# -- the mirror -----------------------------------------------------------------------------------


def kept(party: str = "ab" * 32) -> None:
    """What a mirror keeps for a party: its device list with two ops, and one thread."""
    from apps.cadre.models import MirrorOp, MirrorParty, MirrorThread

    owner = MirrorParty.objects.create(party=party, label="")
    roster = [{"device": "cd" * 32, "addrs": []}]
    MirrorThread.objects.create(
        thread_id="01" * 32, party=owner, member="ef" * 32, control=True, roster=roster
    )
    MirrorThread.objects.create(thread_id="02" * 32, party=owner, member="ef" * 32)
    for seq in (1, 2):
        MirrorOp.objects.create(
            thread_id="01" * 32, device=b"d" * 32, seq=seq, hash=bytes([seq]) * 32, raw=b"x"
        )


def test_a_mirror_shows_what_it_keeps(browser, node, settings) -> None:  # noqa: F811
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    page = browser.get(DEVICES).content.decode()
    assert "This mirror" in page
    assert "Nobody's threads yet" in page
    kept()
    page = browser.get(DEVICES).content.decode()
    text = visible(page)
    assert "Their device list" in text
    assert "2 changes kept" in text
    assert "last received" in text
    assert "1 device may fetch it" in text
    assert "0 changes kept" in text
    assert "nothing received yet" in text
    assert not HEX_ID.search(text)


# -- the claim page of a new node -----------------------------------------------------------------


@pytest.fixture
def claim(db, node) -> Client:
    """A browser holding this node's claim token (as after opening the printed link)."""
    client = Client()
    token = node_services.claim_token_issue()
    assert client.get(f"/claim/?token={token}").status_code == 302
    return client


def test_the_claim_page_offers_another_device_of_mine(claim) -> None:
    page = claim.get("/claim/").content.decode()
    assert "This is another device of mine" in page
    assert "/claim/?as=device" in page
    joining = claim.get("/claim/?as=device").content.decode()
    assert "The device link" in joining
    assert 'data-qr-prefix="sereus:device/"' in joining
    assert "passphrase" not in joining.lower().split('id="main"')[1]


def test_claiming_with_a_device_link_starts_the_join(claim) -> None:
    link = foreign_link()
    form = {"username": "alice", "password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD}
    done = claim.post("/claim/?as=device", {**form, "link": link})
    assert done.status_code == 302
    assert done["Location"] == reverse("cadre:join")
    assert PendingJoin.objects.get().link == link
    node = Node.objects.get()
    assert node.owner.username == "alice"
    assert node.owner.check_password(OWNER_PASSWORD)
    # Logged in; no phrase shown (the other device's secret is the one that counts).
    page = claim.get(reverse("cadre:join"))
    assert page.status_code == 200
    assert 'ol class="phrase"' not in page.content.decode()


def test_a_bad_link_on_the_claim_page_keeps_the_claim_open(claim) -> None:
    form = {"username": "alice", "password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD}
    page = claim.post("/claim/?as=device", {**form, "link": "sereus:device/AAAA"})
    assert "This device link is damaged" in unescape(page.content.decode())
    assert node_services.node_needs_claim()  # the token still works: try again
    expired = claim.post("/claim/?as=device", {**form, "link": foreign_link(expires_in_ms=-5)})
    # The shape is fine: the account is made and the join page says what is wrong.
    assert expired.status_code == 302
    page = claim.get(expired["Location"]).content.decode()
    assert "This device link has expired" in unescape(page)
    assert not PendingJoin.objects.exists()
