"""The control thread: made on the first cadre action, derivable from the phrase, hidden from
thread lists, listing the party's threads and devices, with the standby key certified."""

from __future__ import annotations

from apps.cadre import control
from apps.cadre import keys as cadre_keys
from apps.cadre.models import PartyDevice
from apps.core.threads import services as thread_services
from apps.core.threads.registry import thread_database


def test_control_thread_is_made_once_with_the_derived_id(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    assert control.control_thread() is None
    made = control.control_ensure()
    assert made.thread == cadre_keys.control_thread_id(control.master_secret())
    assert control.control_ensure().pk == made.pk
    # Never listed for the person.
    assert [t.pk for t in thread_services.thread_list()] == [chat.pk]
    assert [t.thread_id for t in control.party_threads()] == [chat.id]
    kinds = {d.kind for d in control.party_devices()}
    assert kinds == {PartyDevice.Kind.FULL, PartyDevice.Kind.STANDBY}
    standby = cadre_keys.standby_key(control.master_secret(), 0)
    for thread in (made, chat):
        assert control.certified(thread, bytes(standby.verify_key))
        assert control.certified(thread, control.this_device())


def test_a_later_thread_is_listed_with_the_standby_certified(node) -> None:
    control.control_ensure()
    later = thread_services.thread_create(name="Later")
    assert later.id in {t.thread_id for t in control.party_threads()}
    standby = cadre_keys.standby_key(control.master_secret(), 0)
    assert control.certified(later, bytes(standby.verify_key))


def test_the_genesis_key_is_certified_only_in_the_control_thread(node) -> None:
    chat = thread_services.thread_create(name="Chat")
    made = control.control_ensure()
    genesis = bytes(cadre_keys.genesis_key(control.master_secret()).verify_key)
    state = thread_database(made.thread).replica().control.state
    assert state.device_member(genesis) is not None
    assert not control.certified(chat, genesis)


def test_the_display_name_follows_the_person_through_the_control_thread(node) -> None:
    from apps.core.threads import naming

    naming.display_name_set(name="Alice")
    control.control_ensure()
    control.settings_step()
    assert control.setting_get("display_name") == "Alice"
    # Another device of hers changed it: the control thread's value moved.
    control.setting_set("display_name", "Alice L.")
    control.settings_step()
    assert naming.display_name() == "Alice L."
    # Changed here: it goes into the control thread.
    naming.display_name_set(name="Ali")
    control.settings_step()
    assert control.setting_get("display_name") == "Ali"


def test_a_device_removed_elsewhere_is_revoked_in_threads_only_this_node_holds(node) -> None:
    import nacl.signing

    from apps.core.thread import keys

    control.control_ensure()
    chat = thread_services.thread_create(name="Chat")
    other = nacl.signing.SigningKey.generate()
    member = bytes.fromhex(chat.member_id)
    control.certify(
        chat, bytes(other.verify_key), keys.device_proof_sign(other, chat.thread, member)
    )
    control.device_record(device=bytes(other.verify_key), kind=PartyDevice.Kind.FULL)
    # Another device of the party removed it (the row came through the control thread).
    control.device_record(
        device=bytes(other.verify_key), kind=PartyDevice.Kind.FULL, state=PartyDevice.State.REMOVED
    )
    control.proofs_step()
    assert not control.certified(chat, bytes(other.verify_key))
