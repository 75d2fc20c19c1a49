"""A provider (or caregiver) on a node of its own in this process, for the access and audit
tests: ``provider_joins`` shares the record with the grant asked for, redeems the link from
that node, and lets this node write the grant the invite carries (the duty it runs when the
join arrives), as a real join does. The provider writes entries through its own database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import nacl.public
import nacl.signing
import nacl.utils

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.invite import invite_parse
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import redemption_request
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.medical import duties, fhir, sharing
from apps.medical.policy import PROVIDER
from tests.core.threads.conftest import OtherNode, exchange
from tests.support.members import Member


class Provider(Member):
    """Someone the patient shared the record with, writing through its own node's database."""

    def write(self, resource: dict) -> str:
        """Adds ``resource`` as this node's own entry (an id its member key owns); its log then
        reaches the patient's node. Returns the entry's id."""
        kind = fhir.TYPES[resource["resourceType"]]
        pk = row_id_new(bytes.fromhex(self.member))
        checked = fhir.resource_check(kind.name, dict(resource, id=pk.hex))
        kind.model().objects.using(self.alias).create(
            id=pk, fhir_id=pk.hex, resource=checked.json, **checked.columns
        )
        self.send()
        return pk.hex

    def displays(self, resource_type: str) -> list[str]:
        """What its node holds of one type: the entries' words."""
        model = fhir.TYPES[resource_type].model()
        return list(model.objects.using(self.alias).values_list("display", flat=True))

    def readable_text(self) -> str:
        return " ".join(" ".join(self.displays(name)) for name in fhir.TYPES)

    def join_part(self, part: Thread, tmp_path: Path) -> OtherNode:
        """Its node opens the invite to the sensitive part sealed to it in the record and joins
        the part with it (as its duty would), with the same device; the patient's node admits
        it and writes its grant there. Returns its node in the part."""
        from apps.medical.models import SealedInvite

        self.receive()
        box = SealedInvite.objects.using(self.alias).get(member=self.member, thread=part.id).box
        member = keys.member_key(self.node.keys.master_secret, self.thread.thread)
        link = nacl.public.SealedBox(member.to_curve25519_private_key()).decrypt(bytes(box))
        database = ThreadDatabase(
            part.thread,
            path=tmp_path / f"{self.alias}-part.sqlite3",
            alias=f"{self.alias}_part",
            node=self.node.keys,
        )
        request = redemption_request(
            invite_parse(link.decode()),
            master_secret=self.node.keys.master_secret,
            device_key=self.node.keys.device,
        )
        threads.invite_admit(thread=part, request=request)
        duties.grants_follow_invites(part)
        exchange(thread_database(part.thread), database)
        return OtherNode(self.node.keys, database)


def provider_joins(
    record: Thread,
    tmp_path: Path,
    name: str,
    *,
    role: str = PROVIDER,
    label: str | None = None,
    read: list[str] | None = None,
    write: list[str] | None = None,
    sensitive: bool = False,
    link: str | None = None,
) -> Provider:
    """``name`` joins ``record`` from a node of its own with the grant given (read everything
    unless told), labelled "<name>, Riverside Clinic" unless told; or with ``link``, an invite
    the patient made already."""
    if link is None:
        link = sharing.share_invite(
            record,
            role=role,
            label=f"{name}, Riverside Clinic" if label is None else label,
            read=list(fhir.TYPES) if read is None else read,
            write=write or [],
            expires_in=timedelta(hours=1),
            sensitive=sensitive,
        ).link
    node = NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    slug = "".join(c for c in name.lower() if c.isalnum())
    database = ThreadDatabase(
        record.thread,
        path=tmp_path / f"{slug}-record.sqlite3",
        alias=f"thread_{record.thread.hex()}_{slug}",
        node=node,
    )
    provider = Provider(OtherNode(node, database), record)
    request = redemption_request(
        invite_parse(link), master_secret=node.master_secret, device_key=node.device
    )
    threads.invite_admit(thread=record, request=request)
    duties.grants_follow_invites(record)  # what this node's duty does when the join arrives
    exchange(thread_database(record.thread), database)
    database.write(lambda writer: writer.set_name(name))
    provider.send()
    return provider
