"""A member's node that seals this node a wrong key (issue 9): detectable and attributable. The
thread page and API say so, name the signing device and member, and this node admits nobody
while it cannot read the thread's membership changes."""

from __future__ import annotations

import nacl.utils
import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.thread import payloads as p
from apps.core.thread.keys import EpochKeys
from apps.core.thread.op import KIND_KEYS
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads import services
from tests.core.thread.conftest import forge
from tests.core.thread.test_hostile_keys import keys_payload
from tests.core.threads.conftest import admit, other_node

pytestmark = pytest.mark.django_db(transaction=True)

SOMEONE = RedemptionRequest(
    invite=b"\x01" * 32,
    member=b"\x02" * 32,
    device=b"\x03" * 32,
    device_cert=b"\x04" * 64,
    proof=b"\x05" * 64,
    device_proof=b"\x06" * 64,
)


@pytest.fixture
def api(node) -> Client:
    token = node_services.claim_token_issue()
    result = node_services.owner_claim(token=token, username="alice", password="pw " * 6)
    client = Client()
    client.force_login(result.user)
    return client


def test_a_rotation_that_seals_this_node_a_wrong_key_is_shown_with_its_sender(
    api, thread, tdb, tmp_path
):
    rotator = other_node(tmp_path, tdb.thread, "rotator")
    admit(tdb, rotator, "admin")
    writer = rotator.database.writer()
    me = bytes.fromhex(thread.member_id)
    real, wrong = nacl.utils.random(32), nacl.utils.random(32)
    payload = keys_payload(writer, {writer.member: real, me: wrong}, real)
    rotation = forge(writer, kind=KIND_KEYS, payload=payload, epoch=payload["epoch"], key=b"")
    writer.replica.ingest_op(rotation)
    (result,) = tdb.ingest([rotation.raw])
    assert result.status == "accepted"  # sealed to every member, by a role that may rotate

    detail = api.get(f"/api/v1/threads/{thread.id}/").json()
    (problem,) = detail["key_problems"]
    assert problem["keys_op"] == rotation.hash.hex()
    assert problem["device"] == writer.device.hex()
    assert problem["member"] == writer.member.hex()
    page = api.get(f"/node/threads/{thread.id}/people/").content.decode()
    assert "gave this node a key that does not work" in page

    # A control op under that key is unreadable here: this node admits nobody meanwhile.
    rename = forge(
        writer,
        kind="control",
        payload=p.control_doc(p.SetMeta(name="renamed")),
        epoch=payload["epoch"],
        key=EpochKeys.from_secret(tdb.thread, payload["epoch"], real).control,
    )
    writer.replica.ingest_op(rename)
    (result,) = tdb.ingest([rename.raw])
    assert result.status == "opaque"
    with pytest.raises(services.ThreadServiceError, match="cannot read all") as refused:
        services.invite_admit(thread=thread, request=SOMEONE)
    assert refused.value.code == "unavailable"
