"""Removing a device of the party, and what the devices page reads (``selectors``)."""

from __future__ import annotations

import nacl.signing
import pytest

from apps.cadre import control, devices, link, selectors
from apps.cadre import keys as cadre_keys
from apps.cadre.control import CadreError
from apps.cadre.models import PartyDevice, PendingJoin
from apps.core.threads import services as thread_services
from tests.cadre.test_link import certify, claim, foreign_link, new_device, proofs_for, pub


def added_device(kind: str = "full", label: str = "Laptop") -> nacl.signing.SigningKey:
    """A second device of this party, added with a device link as the LINK protocol does."""
    data = link.link_parse(link.link_create(kind=kind, label=label).link)
    device = new_device()
    certify(data, device, proofs_for(device, claim(data, device)["threads"]))
    return device


def test_removal_revokes_the_device_in_every_thread(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    notes = thread_services.thread_create(name="Notes")
    laptop, phone = added_device(label="Laptop"), added_device(label="Phone")
    threads = devices.holding_threads()
    assert {t.pk for t in threads} == {control.control_thread().pk, chat.pk, notes.pk}
    assert all(control.certified(t, pub(laptop)) for t in threads)
    devices.device_remove(device=pub(laptop).hex().upper())
    for thread in threads:
        assert not control.certified(thread, pub(laptop))
        assert control.certified(thread, pub(phone))  # the others stay
        assert control.certified(thread, control.this_device())
    gone = next(
        d for d in control.party_devices(include_gone=True) if d.device == pub(laptop).hex()
    )
    assert gone.state == PartyDevice.State.REMOVED
    assert gone.label == "Laptop"
    assert pub(laptop).hex() not in {d.device for d in control.party_devices()}
    devices.device_remove(device=pub(laptop).hex())  # again: nothing more to do


def test_a_removed_device_is_not_certified_again_from_its_proofs(node) -> None:
    thread_services.thread_create(name="Chat")
    laptop = added_device()
    devices.device_remove(device=pub(laptop).hex())
    control.proofs_step()  # the worker's round: proofs of removed devices are not used
    assert not any(control.certified(t, pub(laptop)) for t in devices.holding_threads())


def test_removal_refuses_this_device_the_standby_and_strangers(node) -> None:
    thread_services.thread_create(name="Chat")
    with pytest.raises(CadreError) as caught:
        devices.device_remove(device=control.this_device().hex())
    assert caught.value.words == "Remove this device from another of your devices."
    with pytest.raises(CadreError) as caught:
        devices.device_remove(device=new_device().verify_key.encode().hex())
    assert caught.value.code == "not_found"  # no device list yet
    control.control_ensure()
    standby = cadre_keys.standby_key(control.master_secret(), 0)
    with pytest.raises(CadreError, match="recovery key cannot be removed") as caught:
        devices.device_remove(device=pub(standby).hex())
    assert caught.value.code == "forbidden"
    assert all(control.certified(t, pub(standby)) for t in devices.holding_threads())
    with pytest.raises(CadreError) as caught:
        devices.device_remove(device=pub(new_device()).hex())
    assert caught.value.code == "not_found"
    for garbage in ("", "zz" * 32, "ab" * 31, "ab" * 33):
        with pytest.raises(CadreError) as caught:
            devices.device_remove(device=garbage)
        assert caught.value.code == "invalid"


def test_device_list_shows_each_device_and_its_threads(node) -> None:
    assert selectors.device_list() == []
    chat = thread_services.thread_create(name="Chat")
    mirror = added_device(kind="mirror", label="Home box")
    listed = selectors.device_list()
    assert listed[0].this_node
    assert listed[0].kind == PartyDevice.Kind.FULL
    assert not listed[0].removable
    by_device = {d.device: d for d in listed}
    box = by_device[pub(mirror).hex()]
    assert box.kind == "mirror"
    assert box.label == "Home box"
    assert "can read none" in box.kind_words
    assert box.removable
    assert box.last_seen is None  # never synced with this node yet
    names = {t.name: t for t in box.threads}
    assert names["Chat"].certified
    assert names["Chat"].behind is None
    assert names["Chat"].thread_id == chat.id
    standby = next(d for d in listed if d.kind == PartyDevice.Kind.STANDBY)
    assert not standby.removable
    assert all(t.certified for t in standby.threads)
    devices.device_remove(device=pub(mirror).hex())
    assert pub(mirror).hex() not in {d.device for d in selectors.device_list()}
    gone = next(
        d for d in selectors.device_list(include_gone=True) if d.device == pub(mirror).hex()
    )
    assert gone.state == PartyDevice.State.REMOVED
    assert not any(t.certified for t in gone.threads)


def test_join_status_says_how_a_join_is_going(node) -> None:
    assert selectors.join_status()["state"] == "none"
    assert selectors.restore_status()["state"] == "none"
    link.join_start(link=foreign_link().text())
    status = selectors.join_status()
    assert status["state"] == PendingJoin.State.PENDING
    assert status["running"]
    assert status["words"] == "waiting to reach your other device"
    link.join_step()
    status = selectors.join_status()
    assert "cannot be reached" in status["problem"]
    assert status["attempts"] == 1
    assert status["progress"] == []
