"""Node-local models (the ``default`` database): the node's owner, the one-time claim token, and
this node's index of its threads (including threads it is still joining)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Node(models.Model):
    """The single row describing this node's ownership (pk is always 1)."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The recovery phrase is shown exactly once; a node whose owner was created headlessly
    # (node_token, node_restore) offers it on the settings page until then.
    recovery_phrase_shown = models.BooleanField(default=False)
    # The name this person goes by in their threads, unless a thread has its own (``my_name``):
    # written into each thread as the member's set_name op ("" until it is set).
    display_name = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="node_singleton")]

    def __str__(self) -> str:
        return "this node"


class ClaimToken(models.Model):
    """The one-time token of the claim URL printed at start-up. Only its hash is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"claim token of {self.created_at:%Y-%m-%d %H:%M}"


class Thread(models.Model):
    """A thread this node takes part in: the node's registry of its thread databases.

    The thread database is the truth; this row and the member/invite/device rows below are
    this node's index of it (lists, admin, search), rewritten by the thread services whenever
    the thread's control state changes.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        LEFT = "left", "left"
        REMOVED = "removed", "removed from the thread"
        DAMAGED = "damaged", "database damaged"
        # Redeeming an invite was interrupted after the redeem reached (or may have reached)
        # the inviter: this node tries again in the background with ``join_link``.
        JOINING = "joining", "joining"
        # The inviter refused the redemption for good (expired, revoked, used by someone
        # else...): ``problem`` says why.
        NOT_ADMITTED = "not_admitted", "not admitted"

    id = models.CharField(primary_key=True, max_length=64, help_text="The thread id, hex.")
    name = models.CharField(max_length=200)
    app = models.CharField(max_length=64, default="default")
    # The apps the thread has enabled, its own first (the thread database's control state).
    apps = models.JSONField(default=list, blank=True)
    member_id = models.CharField(
        max_length=64, help_text="This party's member key in the thread, hex."
    )
    role = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    problem = models.TextField(blank=True)
    # While joining: the invite link being redeemed (it holds the invite secret, so it is
    # cleared as soon as the join ends, either way).
    join_link = models.TextField(blank=True)
    # The name this member goes by in this thread only ("": the node's display name).
    my_name = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.id[:12]

    @property
    def thread(self) -> bytes:
        return bytes.fromhex(self.id)


class ThreadMember(models.Model):
    """A member of a thread, as its control state says (index; written by the services)."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="members")
    member_id = models.CharField(max_length=64)
    role = models.CharField(max_length=64)
    is_me = models.BooleanField(default=False)

    class Meta:
        ordering = ["thread", "-is_me", "role", "member_id"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "member_id"], name="thread_member_once")
        ]

    def __str__(self) -> str:
        return f"{self.member_id[:12]} ({self.role})"


class ThreadDevice(models.Model):
    """A device certified for a member of a thread (index; written by the services)."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=64)
    member_id = models.CharField(max_length=64)
    is_this_node = models.BooleanField(default=False)

    class Meta:
        ordering = ["thread", "member_id", "device_id"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "device_id"], name="thread_device_once")
        ]

    def __str__(self) -> str:
        return self.device_id[:12]


class ContactName(models.Model):
    """A name this node gives another member of a thread, that only this node shows (it never
    goes into the thread): it wins over the name the member gave itself."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="contact_names")
    member_id = models.CharField(max_length=64)
    name = models.CharField(max_length=80)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["thread", "member_id"], name="contact_name_once")
        ]

    def __str__(self) -> str:
        return self.name


class ThreadInvite(models.Model):
    """An invite of a thread. ``link`` (which holds the invite secret) is kept only for invites
    this node made, so its owner can show the link and QR code again."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="invites")
    invite_id = models.CharField(max_length=64)
    role = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16)
    link = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    uses = models.PositiveIntegerField(null=True, default=1, help_text="None: no cap.")
    used = models.PositiveIntegerField(default=0)
    label = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "invite_id"], name="thread_invite_once")
        ]

    def __str__(self) -> str:
        return f"invite {self.invite_id[:12]} ({self.role}, {self.status})"

    @property
    def reach(self) -> str:
        """Who may use it and how many did, in words for its page."""
        if self.uses == 1:
            return "for one person"
        who = "anyone with the link" if self.uses is None else f"up to {self.uses} people"
        return f"for {who}, {self.used} joined so far"


from apps.core.delivery_models import PeerVector  # noqa: E402, F401
