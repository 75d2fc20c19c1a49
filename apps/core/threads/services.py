"""Thread services: the only writers of threads (views, API, admin, tasks and p2p call these).

Each writes through ops: a control op, validated by this node's replica like any other, in one
transaction of the thread's database; then this node's index of the thread (``Thread`` and the
member, device and invite rows) is brought up to date.

Invites: the admitting node checks a redemption before writing anything (``redemption``), and
admits the same newcomer again without a write; the joining node keeps a join whose answer was
lost in the joining state and the p2p node finishes it in the background (``joining``).

Beside this module, and re-exported by it (callers use ``services.<name>``): the shared error
and write (``service_base``), the admitting node's half of an invite (``admitting``), taking in
a thread joined or adopted (``intake``), and members and devices (``members``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apps.core.models import Thread, ThreadInvite
from apps.core.selectors import node_info
from apps.core.thread import payloads as p
from apps.core.thread.invite import Invite, InviteError, invite_parse
from apps.core.thread.policy import PolicyError, policy_template
from apps.core.thread.replica import IngestResult, Verified
from apps.core.thread.writer import RedemptionRequest, ThreadWriter, redemption_request
from apps.core.threads import joining, leaving
from apps.core.threads.admitting import invite_admit as invite_admit
from apps.core.threads.database import NodeKeys
from apps.core.threads.intake import join_receive as join_receive
from apps.core.threads.intake import thread_adopt as thread_adopt
from apps.core.threads.intake import thread_join
from apps.core.threads.invite_words import refusal_words
from apps.core.threads.members import addresses_set as addresses_set
from apps.core.threads.members import device_certify as device_certify
from apps.core.threads.members import device_revoke as device_revoke
from apps.core.threads.members import member_remove as member_remove
from apps.core.threads.members import member_set_role as member_set_role
from apps.core.threads.registry import thread_database
from apps.core.threads.service_base import (
    ThreadServiceError,
    _database,
    _hex,
    _key,
    _now_ms,
    _write,
    index_refresh,
)
from apps.core.threads.signals import thread_added

MAX_INVITE_DAYS = 30
MAX_INVITE_ADDRS = 8
MAX_INVITE_USES = p.MAX_INVITE_USES
MAX_INVITE_LABEL = p.MAX_INVITE_LABEL
LEAVE_WAIT = 5.0  # seconds a leave waits for another member's device to take it


class Network(Protocol):
    """What the thread services need of the p2p layer (which depends on them, not the reverse)."""

    def addresses(self) -> tuple[str, ...]:
        """This node's p2p addresses, to put in invite links."""
        ...

    def redeem(self, invite: Invite, request: RedemptionRequest) -> None:
        """Dial a member listed in ``invite``, redeem it with ``request`` and receive the
        thread's log into this node's thread database (``join_receive``); raise
        ``ThreadServiceError`` (unreachable, expired, used, revoked, ...) if that fails, with
        the code ``interrupted`` when it failed after the redeem was sent (the inviter may
        have admitted this node)."""
        ...

    def typing(self, thread: bytes) -> None:
        """Tell the connected member nodes of ``thread`` that this member is typing (ephemeral:
        nothing is stored, a lost signal is not shown)."""
        ...

    def blobs_want(self, thread: bytes, chunks: list[bytes]) -> None:
        """Fetch these chunks of ``thread`` from member nodes that have them, in the background
        (``apps.core.blobs``); open pages of the thread are told as they arrive."""
        ...

    def leave_deliver(self, thread: bytes, timeout: float) -> bool:
        """Push this node's leave of ``thread`` to the other members' devices and wait up to
        ``timeout`` seconds until one of them holds it (``leaving.leave_delivered``); False
        when none did by then (the p2p node goes on at every contact)."""
        ...


# Set by the p2p app when it loads (``apps.p2p.client``); None where no network is wired up.
network: Network | None = None


# -- creating, joining, leaving ------------------------------------------------------------------


# Apps whose threads are the node's own business, never listed for a person (a party's control
# thread, among its own devices): registered by those apps.
UNLISTED: set[str] = set()


def unlisted_register(app: str) -> None:
    UNLISTED.add(app)


def thread_list(*, include_left: bool = False):
    """This node's threads (a query: callers filter and page it)."""
    threads = Thread.objects.exclude(app__in=UNLISTED) if UNLISTED else Thread.objects.all()
    return threads if include_left else threads.exclude(state=Thread.State.LEFT)


def thread_create(*, name: str, app: str = "default") -> Thread:
    name = name.strip()
    if not name or len(name) > 200:
        raise ThreadServiceError("invalid", "a thread needs a name of 1 to 200 characters")
    try:
        policy = policy_template(app)
    except PolicyError as exc:
        raise ThreadServiceError("invalid", str(exc)) from exc
    node = NodeKeys.of_this_node()
    if node.master_secret is None:
        raise ThreadServiceError(
            "unavailable", "this node has no usable master secret (claim it, or unlock it)"
        )
    writer = ThreadWriter.create(
        master_secret=node.master_secret,
        device_key=node.device,
        name=name,
        app=app,
        policy=policy,
    )
    database = thread_database(writer.thread)
    database.ingest(op.raw for op in writer.replica.admitted)
    thread = Thread.objects.create(
        id=_hex(writer.thread), name=name, app=app, member_id=_hex(writer.member), role="owner"
    )
    index_refresh(thread=thread)
    thread_added.send(sender=Thread, thread=writer.thread)
    return thread


def thread_leave(*, thread: Thread, wait: float = LEAVE_WAIT) -> bool:
    """Leave a thread: a leave op, pushed to the other members' devices; the thread is left
    here at once. Returns whether another member's device holds the leave within ``wait``
    seconds; if not, the thread stays leaving (``leaving``) and the p2p node delivers the
    leave at its next contact with any of them. For a thread this node is only joining, or was
    not admitted to, nothing is written: nobody to tell (True)."""
    if thread.state in (Thread.State.JOINING, Thread.State.NOT_ADMITTED):
        Thread.objects.filter(pk=thread.pk).update(
            state=Thread.State.LEFT, join_link="", problem=""
        )
        return True
    if thread.state in (Thread.State.LEFT, Thread.State.REMOVED):
        raise ThreadServiceError("conflict", f"you are not a member of {thread} any more")
    if thread.role == "owner":
        raise ThreadServiceError(
            "forbidden",
            "the owner cannot leave the thread: make another member the owner first",
        )
    # Left in this node's index with the write (not "removed" for a moment in between).
    thread.state, thread.problem = Thread.State.LEFT, leaving.LEAVE_PENDING
    try:
        _write(thread, lambda writer: writer.control(p.Leave()))
    except ThreadServiceError:
        thread.state, thread.problem = Thread.State.ACTIVE, ""
        raise
    if network is None or wait <= 0:
        return False
    return network.leave_deliver(thread.thread, wait)


def thread_ingest(*, thread: Thread, raws: list[bytes] | Verified) -> list[IngestResult]:
    """Ops from another node (sync, push, a joining node's log)."""
    database = _database(thread)
    results = database.ingest(raws)
    if any(r.op is not None and r.op.kind != "data" for r in results if r.status != "duplicate"):
        index_refresh(thread=thread)
        # A member may have left: this node may be one that starts a new epoch without it.
        if thread.state == Thread.State.ACTIVE and leaving.rotate_after_leave(
            database, bytes.fromhex(thread.member_id)
        ):
            index_refresh(thread=thread)
    return results


# -- invites -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedInvite:
    invite: Invite
    record: ThreadInvite

    @property
    def link(self) -> str:
        return self.invite.link()


def _invite_terms(thread: Thread, role: str, uses: int | None, label: str) -> str:
    """Check how many people an invite is for and its label; the label as it will be kept."""
    if uses is not None and not 1 <= uses <= MAX_INVITE_USES:
        raise ThreadServiceError(
            "invalid", f"an invite is for 1 to {MAX_INVITE_USES:,} people, or for anyone"
        )
    label = " ".join(label.split())
    if len(label) > MAX_INVITE_LABEL or not label.isprintable():
        raise ThreadServiceError(
            "invalid", f"an invite's label is plain text of at most {MAX_INVITE_LABEL} characters"
        )
    if uses != 1:
        database = _database(thread)
        with database.lock:
            open_roles = database.replica().control.state.policy.open_roles()
        if role not in open_roles:
            allowed = " or ".join(open_roles) or "no role at all"
            raise ThreadServiceError(
                "invalid",
                f"a link for more than one person cannot make anyone {role} in this thread "
                f"(it can make: {allowed}); make it for one person instead",
            )
    return label


def invite_create(
    *,
    thread: Thread,
    role: str,
    expires_in: timedelta,
    addrs: tuple[str, ...] = (),
    uses: int | None = 1,
    label: str = "",
) -> CreatedInvite:
    """A new invite of ``thread``: for one person (``uses`` 1), up to ``uses`` people, or anyone
    with the link (None); a multi-use invite only at a role the thread's policy keeps open."""
    if not timedelta(minutes=1) <= expires_in <= timedelta(days=MAX_INVITE_DAYS):
        raise ThreadServiceError(
            "invalid", f"an invite lasts from one minute to {MAX_INVITE_DAYS} days"
        )
    label = _invite_terms(thread, role, uses, label)
    expiry = _now_ms() + int(expires_in.total_seconds() * 1000)
    if not addrs and network is not None:
        addrs = network.addresses()[:MAX_INVITE_ADDRS]
    invite = _write(
        thread,
        lambda writer: writer.invite_create(
            role=role,
            expiry=expiry,
            inviter=node_info().peer_id,
            addrs=addrs,
            uses=uses,
            label=label,
        ),
    )
    record, _ = ThreadInvite.objects.update_or_create(
        thread=thread,
        invite_id=_hex(invite.public_key),
        defaults={
            "role": role,
            "expires_at": datetime.fromtimestamp(expiry / 1000, UTC),
            "status": "open",
            "link": invite.link(),
            "uses": uses,
            "used": 0,
            "label": label,
        },
    )
    return CreatedInvite(invite, record)


def invite_revoke(*, thread: Thread, invite_id: str) -> None:
    invite = _key(invite_id, "the invite id")
    _write(thread, lambda writer: writer.control(p.RevokeInvite(invite=invite)))


def invite_redeem_local(*, link: str) -> tuple[Invite, RedemptionRequest]:
    """The joining node's half of redeeming an invite: check the link and prove possession of
    its secret with this party's member key for the thread. The network half (dialing a member,
    being admitted, receiving the log) is ``/sereus/invite/1.0.0``."""
    try:
        invite = invite_parse(link)
        invite.check_fresh(_now_ms())
    except InviteError as exc:
        raise ThreadServiceError(exc.code, str(exc)) from exc
    existing = Thread.objects.filter(pk=_hex(invite.thread)).first()
    if existing is not None and existing.state == Thread.State.ACTIVE:
        raise ThreadServiceError(
            "conflict", f"You are already in {existing.name}: there is no need to join it again."
        )
    node = NodeKeys.of_this_node()
    if node.master_secret is None:
        raise ThreadServiceError("unavailable", "this node has no usable master secret")
    return invite, redemption_request(
        invite, master_secret=node.master_secret, device_key=node.device
    )


def invite_redeem(*, link: str) -> Thread:
    """Join a thread with an invite link: the local half here, the admission over the network.

    Returns the thread, active; or, when the answer was lost after the redeem was sent, in the
    joining state (the p2p node redeems again in the background until it is admitted or
    refused for good, see ``joining``)."""
    invite, request = invite_redeem_local(link=link)
    if network is None:
        raise ThreadServiceError(
            "unreachable",
            "this node cannot reach the inviter: its peer-to-peer host is not running",
        )
    if leaving.leave_pending(invite.thread) is not None:
        # Coming back before the others heard that this node left: they would still count it
        # a member ("already a member"). Tell them first.
        network.leave_deliver(invite.thread, LEAVE_WAIT)
    previous = joining.join_begin(invite=invite, link=link.strip())
    try:
        network.redeem(invite, request)
    except ThreadServiceError as failure:
        if failure.code == joining.INTERRUPTED:
            joining.join_failed(
                thread=invite.thread, code=failure.code, reason=f"{failure}; trying again"
            )
            return Thread.objects.get(pk=_hex(invite.thread))
        # Said in this node's words, whatever the inviter's node sent with its answer.
        exc = ThreadServiceError(failure.code, refusal_words(failure.code, str(failure)))
        if previous is not None and previous.state == Thread.State.JOINING:
            # An earlier attempt may have been admitted: a refusal now ends that join too,
            # anything else leaves it to the background attempts.
            joining.join_failed(thread=invite.thread, code=exc.code, reason=str(exc))
        else:
            joining.join_undo(thread=invite.thread, previous=previous)
        raise exc from failure
    except BaseException:
        joining.join_undo(thread=invite.thread, previous=previous)
        raise
    return thread_join(invite=invite)
