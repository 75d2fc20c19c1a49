"""The admin panel for thread roles and the thread pages: every action is a signed control op;
the thread data admin writes rows through the capture like any ORM write."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from apps.core import identity
from apps.core import services as node_services
from apps.core.models import Thread, ThreadDevice, ThreadInvite, ThreadMember
from apps.core.thread import keys
from apps.core.thread.invite import invite_parse
from apps.core.thread.keys import member_key
from apps.core.threads import services
from apps.core.threads.registry import thread_database
from tests.core.threads.conftest import admit, log_since, log_size, other_node
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner_browser(node) -> Client:
    token = node_services.claim_token_issue()
    user = node_services.owner_claim(token=token, username="alice", password="pw " * 6).user
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def with_bob(thread: Thread, tmp_path):
    database = thread_database(thread.thread)
    bob = other_node(tmp_path, thread.thread, "bob")
    admit(database, bob, "writer")
    services.index_refresh(thread=thread)
    bob_id = bytes(member_key(bob.keys.master_secret, thread.thread).verify_key).hex()
    return ThreadMember.objects.get(thread=thread, member_id=bob_id)


def test_changing_a_role_in_the_admin_is_a_signed_control_op(owner_browser, thread, with_bob):
    database = thread_database(thread.thread)
    before = log_size(database)
    url = reverse("admin:core_threadmember_change", args=[with_bob.pk])
    form = owner_browser.get(url)
    assert form.status_code == 200
    assert b'<option value="reader">' in form.content
    response = owner_browser.post(url, {"role": "reader"})
    assert response.status_code == 302
    ((op, _),) = log_since(database, before)
    assert op.kind == "control"
    assert op.device == bytes(database.node.device.verify_key)
    decision = database.replica().decision(op.hash)
    assert decision.status == "accepted"
    assert database.replica().snapshot().roles[bytes.fromhex(with_bob.member_id)] == "reader"
    assert ThreadMember.objects.get(pk=with_bob.pk).role == "reader"


def test_a_refused_admin_change_says_why_and_changes_nothing(owner_browser, thread, with_bob):
    me = ThreadMember.objects.get(thread=thread, is_me=True)
    before = log_size(thread_database(thread.thread))
    response = owner_browser.post(
        reverse("admin:core_threadmember_change", args=[me.pk]), {"role": "writer"}, follow=True
    )
    assert "ownership changes only by transfer" in response.content.decode()
    assert log_size(thread_database(thread.thread)) == before
    assert ThreadMember.objects.get(pk=me.pk).role == "owner"


def test_admin_removes_members_and_creates_and_revokes_invites(owner_browser, thread, with_bob):
    database = thread_database(thread.thread)
    response = owner_browser.post(
        reverse("admin:core_threadmember_delete", args=[with_bob.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert bytes.fromhex(with_bob.member_id) not in database.replica().snapshot().roles

    response = owner_browser.post(
        reverse("admin:core_threadinvite_add"),
        {"thread": thread.pk, "role": "writer", "expires_in_hours": 2},
    )
    assert response.status_code == 302
    invite = ThreadInvite.objects.get(thread=thread, status="open")
    assert invite_parse(invite.link).public_key.hex() == invite.invite_id
    page = owner_browser.get(reverse("admin:core_threadinvite_change", args=[invite.pk]))
    assert b"<svg" in page.content
    owner_browser.post(
        reverse("admin:core_threadinvite_changelist"),
        {"action": "revoke", "_selected_action": [invite.pk]},
    )
    invite.refresh_from_db()
    assert invite.status == "revoked"


def test_thread_pages_create_invite_and_change_roles(owner_browser, node):
    response = owner_browser.post(reverse("core:threads"), {"name": "Garden", "app": "default"})
    thread = Thread.objects.get(name="Garden")
    assert response["Location"] == reverse("core:thread", args=[thread.id])
    page = owner_browser.get(response["Location"], follow=True)
    assert b"Garden" in page.content
    response = owner_browser.post(
        reverse("core:thread_invite", args=[thread.id]), {"role": "writer", "expires_in": "3600"}
    )
    page = owner_browser.get(response["Location"])
    link = re.search(r"sereus:invite/[A-Za-z0-9_-]+", page.content.decode()).group(0)
    assert invite_parse(link).thread == thread.thread
    assert b"<svg" in page.content
    # Shown once: the next visit does not show the secret again.
    assert link not in owner_browser.get(response["Location"]).content.decode()
    joined = owner_browser.post(reverse("core:thread_join"), {"link": "not a link"})
    assert b"not an invite link" in joined.content


def test_the_thread_data_admin_writes_through_the_capture(owner_browser, thread):
    database = thread_database(thread.thread)
    response = owner_browser.get(reverse("thread_data_select", args=[thread.id]))
    assert response.status_code == 302
    before = log_size(database)
    response = owner_browser.post(
        reverse("thread_data:replicated_app_note_add"),
        {"title": "from the admin", "body": "b", "stars": 3},
    )
    assert response.status_code == 302, response.content[:2000]
    ((op, changes),) = log_since(database, before)
    assert op.kind == "data"
    assert changes[0].cols["title"] == "from the admin"
    note = Note.objects.using(database.alias).get()
    before = log_size(database)
    owner_browser.post(
        reverse("thread_data:replicated_app_note_delete", args=[note.pk]), {"post": "yes"}
    )
    ((op, changes),) = log_since(database, before)
    assert changes[0].action == "delete"


def test_another_device_is_certified_in_the_admin_only_with_its_own_proof(
    owner_browser, thread, tmp_path, settings
):
    """The other node prints its proof (``manage.py device_proof``); the admin form takes it.
    A proof that is not that device's own signature is refused by the thread's rules."""
    other_dir = tmp_path / "laptop"
    other_dir.mkdir(mode=0o700)
    laptop = identity.device_key_ensure(other_dir).signing_key
    device = bytes(laptop.verify_key).hex()
    member = bytes.fromhex(thread.member_id)
    url = reverse("admin:core_threaddevice_add")
    forged = keys.device_proof_sign(
        member_key(thread_database(thread.thread).node.master_secret, thread.thread),
        thread.thread,
        member,
    ).hex()
    fields = {"thread": thread.pk, "device_id": device}
    refused = owner_browser.post(url, {**fields, "device_proof": forged}, follow=True)
    assert b"did not prove it holds its key" in refused.content
    assert not ThreadDevice.objects.filter(device_id=device).exists()

    settings.DATA_DIR = other_dir
    printed = StringIO()
    call_command("device_proof", thread.id, thread.member_id, stdout=printed)
    proof = printed.getvalue().strip()
    keys.device_proof_verify(
        thread.thread, member, laptop.verify_key.encode(), bytes.fromhex(proof)
    )
    settings.DATA_DIR = tmp_path / "data"
    response = owner_browser.post(url, {**fields, "device_proof": proof})
    assert response.status_code == 302
    assert ThreadDevice.objects.filter(device_id=device).exists()
