"""The cadre's rows: the control thread's (replicated among the party's own devices), and this
node's own (links it made, joins and restores under way, and, on a mirror, the ciphertext it
keeps)."""

from django.db import models

from apps.core.replicated import ReplicatedModel

HEX32 = 64  # a 32-byte key or id, hex
LABEL = 80


# -- the control thread (replicated among the party's devices) ----------------------------------


class PartyThread(ReplicatedModel):
    """A thread of the party: every full device takes it in and is certified there."""

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        LEFT = "left", "left"

    thread_id = models.CharField(max_length=HEX32, db_index=True)
    app = models.CharField(max_length=64, default="default")
    name = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)

    class Meta:
        db_table = "cadre_thread"
        ordering = ["name", "thread_id"]


class PartyDevice(ReplicatedModel):
    """A device of the party: a full node, a mirror (ciphertext only) or the standby key."""

    class Kind(models.TextChoices):
        FULL = "full", "device"
        MIRROR = "mirror", "mirror"
        STANDBY = "standby", "recovery key"

    class State(models.TextChoices):
        ACTIVE = "active", "active"
        REMOVED = "removed", "removed"
        SPENT = "spent", "used for a recovery"

    device = models.CharField(max_length=HEX32, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FULL)
    label = models.CharField(max_length=LABEL, blank=True)
    peer_id = models.CharField(max_length=100, blank=True)
    addrs = models.JSONField(default=list, blank=True)
    standby_index = models.IntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    added_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "cadre_device"
        ordering = ["added_at", "device"]


class DeviceProof(ReplicatedModel):
    """A device's own signature for one thread (``keys.device_proof_sign``): left here by a full
    device for a thread it is not certified in yet, so any certified device certifies it."""

    thread_id = models.CharField(max_length=HEX32, db_index=True)
    device = models.CharField(max_length=HEX32)
    proof = models.CharField(max_length=128)

    class Meta:
        db_table = "cadre_proof"


class PartySetting(ReplicatedModel):
    """A node setting that follows the person to every device (display name, feed rules...)."""

    key = models.CharField(max_length=64, db_index=True)
    value = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "cadre_setting"


# -- this node only -------------------------------------------------------------------------------


class DeviceLink(models.Model):
    """A device link this node made: single use, short-lived. Only the link key's public half is
    kept; the secret half is in the link alone."""

    id = models.CharField(primary_key=True, max_length=32)  # hex of 16 random bytes
    public_key = models.CharField(max_length=HEX32)
    kind = models.CharField(max_length=16, default="full")
    label = models.CharField(max_length=LABEL, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.CharField(max_length=HEX32, blank=True)  # the device that claimed it

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"device link {self.id[:8]}"


class PendingJoin(models.Model):
    """This node joining a party with a device link (the worker carries it out)."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting to reach your other device"
        CLAIMED = "claimed", "certified; fetching your threads"
        FETCHING = "fetching", "fetching your threads"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    link = models.TextField(blank=True)  # holds the link's secret: cleared when the join ends
    kind = models.CharField(max_length=16, default="full")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    problem = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"join ({self.state})"


class RestoreRun(models.Model):
    """This node restoring its party from the recovery phrase (the worker carries it out)."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting to reach a device or mirror of yours"
        LISTING = "listing", "finding your threads"
        FETCHING = "fetching", "fetching your threads"
        TAKEOVER = "takeover", "making this node one of your devices"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    sources = models.JSONField(default=list)  # [{"peer": peer id, "addrs": [multiaddr]}]
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    problem = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"restore ({self.state})"


class SyncProgress(models.Model):
    """How far a join or a restore got in one thread (for its progress page)."""

    class State(models.TextChoices):
        WAITING = "waiting", "waiting"
        FETCHING = "fetching", "fetching"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    run = models.CharField(max_length=16)  # "join" | "restore"
    thread_id = models.CharField(max_length=HEX32)
    name = models.CharField(max_length=200, blank=True)
    app = models.CharField(max_length=64, blank=True)
    control = models.BooleanField(default=False)
    ops_fetched = models.IntegerField(default=0)
    ops_total = models.IntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING)
    problem = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-control", "name", "thread_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "thread_id"], name="cadre_progress_once")
        ]

    def __str__(self) -> str:
        return f"{self.run} {self.thread_id[:12]} ({self.state})"


# -- a mirror's store (ciphertext only) ----------------------------------------------------------


class MirrorParty(models.Model):
    """A party this mirror serves: it proves itself with its party key."""

    party = models.CharField(primary_key=True, max_length=HEX32)
    label = models.CharField(max_length=LABEL, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"party {self.party[:12]}"


class MirrorThread(models.Model):
    """A thread this mirror keeps for a party, and who may fetch it (the roster the party's
    devices send: the thread's active member devices and their addresses)."""

    thread_id = models.CharField(primary_key=True, max_length=HEX32)
    party = models.ForeignKey(MirrorParty, on_delete=models.CASCADE, related_name="threads")
    member = models.CharField(max_length=HEX32)  # the party's member key in the thread
    control = models.BooleanField(default=False)
    roster = models.JSONField(default=list, blank=True)  # [{"device": hex, "addrs": [...]}]
    roster_at = models.DateTimeField(null=True, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"mirrored thread {self.thread_id[:12]}"


class MirrorOp(models.Model):
    """One op as it came: signature and chain checked, body never opened."""

    thread_id = models.CharField(max_length=HEX32)
    device = models.BinaryField()
    seq = models.BigIntegerField()
    hash = models.BinaryField(unique=True)
    raw = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["thread_id", "id"], name="cadre_mirror_log"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["thread_id", "device", "seq"], name="cadre_mirror_slot")
        ]

    def __str__(self) -> str:
        return f"op {self.thread_id[:12]}/{self.seq}"
