"""The storage app's rows (ADR 25).

Replicated: the storage thread's manifest (snapshots, files, chunks, shares, holders,
retention) and a holding thread's terms and quota. Node-local: the jobs this node runs (backups,
restores) and, on a holder, the parties it holds shares for and the shares themselves (the
bytes are files under ``<data>/storage/held/``; ``held.py``).

Byte counts are whole bytes; times in the replicated rows are milliseconds since the epoch
(claimed by the writer and shown, never used by a rule).
"""

from django.db import models

from apps.core.replicated import ReplicatedModel

HEX32 = 64  # a 32-byte key, id or digest, hex
LABEL = 120


# -- the storage thread (the party's own) ------------------------------------------------------


class Snapshot(ReplicatedModel):
    """One backup of one source folder, made on one device."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        COMPLETE = "complete", "complete"
        FAILED = "failed", "failed"

    label = models.CharField(max_length=LABEL, blank=True)
    source = models.TextField()  # the folder backed up, as its device names it
    device = models.CharField(max_length=HEX32)  # the device that made it
    device_label = models.CharField(max_length=LABEL, blank=True)
    started_ms = models.BigIntegerField()
    finished_ms = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    problem = models.TextField(blank=True)
    files = models.IntegerField(default=0)  # regular files
    dirs = models.IntegerField(default=0)
    bytes = models.BigIntegerField(default=0)  # the files' size
    new_bytes = models.BigIntegerField(default=0)  # plaintext of chunks new to the party
    stored_bytes = models.BigIntegerField(default=0)  # share bytes placed for those chunks

    class Meta:
        db_table = "storage_snapshot"
        ordering = ["-started_ms"]


class FileEntry(ReplicatedModel):
    """A file, folder or symbolic link of a snapshot; a file lists its chunks in order."""

    class Kind(models.TextChoices):
        FILE = "file", "file"
        DIR = "dir", "folder"
        LINK = "link", "link"

    snapshot = models.UUIDField(db_index=True)  # Snapshot.pk
    path = models.TextField()  # relative to the source, "/"-separated, never starts with "/"
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FILE)
    mode = models.IntegerField(default=0o644)  # permission bits (stat.S_IMODE)
    mtime_ns = models.BigIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    chunks = models.JSONField(default=list, blank=True)  # [Chunk.key hex, ...] in file order
    target = models.TextField(blank=True)  # a link's target

    class Meta:
        db_table = "storage_file"
        ordering = ["path"]


class Chunk(ReplicatedModel):
    """A piece of plaintext, stored once per party whatever files hold it. ``key`` is its keyed
    hash (``keys.chunk_id``): the same content gets the same key in this party only."""

    class State(models.TextChoices):
        PLACED = "placed", "placed"  # every share placed
        PARTIAL = "partial", "placed in part"  # at least k shares placed, some still pending
        PENDING = "pending", "waiting for holders"
        LOST = "lost", "lost"  # fewer than k shares anywhere

    key = models.CharField(max_length=HEX32, db_index=True)
    size = models.IntegerField()  # plaintext bytes
    packed = models.IntegerField()  # sealed bytes (what is erasure-coded)
    k = models.SmallIntegerField()
    n = models.SmallIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)

    class Meta:
        db_table = "storage_chunk"


class Share(ReplicatedModel):
    """Share ``index`` (0..n-1) of a chunk and the holder that keeps it. ``digest`` is the
    BLAKE2b-256 of the share's bytes: a fetched share is checked against it. ``answers`` holds
    the expected answers of the next audits (``engine.audit_answers``): a holder proves it still
    has the share without the owner keeping a copy."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be placed"
        PLACED = "placed", "placed"
        MISSING = "missing", "missing"
        CORRUPT = "corrupt", "failed its check"

    chunk = models.UUIDField(db_index=True)  # Chunk.pk
    index = models.SmallIntegerField()
    holder = models.UUIDField(null=True, blank=True, db_index=True)  # Holder.pk
    digest = models.CharField(max_length=HEX32, db_index=True)
    size = models.IntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    placed_ms = models.BigIntegerField(null=True, blank=True)
    verified_ms = models.BigIntegerField(null=True, blank=True)
    answers = models.BinaryField(default=b"", blank=True)
    audits = models.IntegerField(default=0)  # answers used

    class Meta:
        db_table = "storage_share"


class Holder(ReplicatedModel):
    """A node that holds shares: a device of the party, or a friend's node (a holding thread)."""

    class Kind(models.TextChoices):
        DEVICE = "device", "your device"
        PEER = "peer", "a friend's node"

    # A holder whose quota is reached stays active (it is still audited and still keeps what it
    # has); placement skips it for lack of room and the pages say it is full.
    class State(models.TextChoices):
        INVITED = "invited", "invited"
        ACTIVE = "active", "active"
        UNREACHABLE = "unreachable", "not reachable"
        FAILING = "failing", "failed a check"
        LEFT = "left", "no longer holds"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    device = models.CharField(max_length=HEX32, blank=True, db_index=True)  # its device key
    peer_id = models.CharField(max_length=100, blank=True)
    addrs = models.JSONField(default=list, blank=True)
    label = models.CharField(max_length=LABEL, blank=True)
    party = models.CharField(max_length=HEX32, blank=True)  # a friend's party, if known
    hold_thread = models.CharField(max_length=HEX32, blank=True)  # a friend's holding thread
    quota = models.BigIntegerField(default=0)  # bytes the holder grants
    used = models.BigIntegerField(default=0)  # bytes of our shares it holds (its last answer)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    problem = models.TextField(blank=True)
    verified_ms = models.BigIntegerField(null=True, blank=True)  # last audit passed
    seen_ms = models.BigIntegerField(null=True, blank=True)  # last answered at all

    class Meta:
        db_table = "storage_holder"
        ordering = ["kind", "label"]


class Retention(ReplicatedModel):
    """What backups to keep (one row; ``services.retention``): the last N, and one per day, week
    and month for as many of each. Zero keeps none of that kind."""

    keep_last = models.IntegerField(default=10)
    keep_daily = models.IntegerField(default=7)
    keep_weekly = models.IntegerField(default=4)
    keep_monthly = models.IntegerField(default=12)

    class Meta:
        db_table = "storage_retention"


# -- a holding thread --------------------------------------------------------------------------


class HoldTerms(ReplicatedModel):
    """Written by the owner when it makes the holding thread: its party id and the party key's
    signature over the thread id (``keys.terms_sign``), so the holder knows whose shares it is
    asked to keep, and what quota the owner asks for."""

    party = models.CharField(max_length=HEX32)
    proof = models.CharField(max_length=128)  # hex signature
    asked = models.BigIntegerField(default=0)  # bytes the owner asks the holder to grant
    label = models.CharField(max_length=LABEL, blank=True)  # the owner's name, as it gives it

    class Meta:
        db_table = "storage_hold_terms"


class HoldQuota(ReplicatedModel):
    """Written by the holder: the bytes it grants, and the node that keeps them."""

    device = models.CharField(max_length=HEX32)
    peer_id = models.CharField(max_length=100)
    quota = models.BigIntegerField()

    class Meta:
        db_table = "storage_hold_quota"


# -- this node's own ----------------------------------------------------------------------------


class Job(models.Model):
    """A backup or a restore this node runs (``jobs.py``), with its progress."""

    class Kind(models.TextChoices):
        BACKUP = "backup", "backup"
        RESTORE = "restore", "restore"

    class State(models.TextChoices):
        QUEUED = "queued", "waiting to start"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    source = models.TextField(blank=True)  # backup: the folder
    label = models.CharField(max_length=LABEL, blank=True)
    snapshot = models.CharField(max_length=36, blank=True)  # Snapshot.pk (made, or restored)
    target = models.TextField(blank=True)  # restore: the folder written to
    paths = models.JSONField(default=list, blank=True)  # restore: only these (empty: all)
    files_total = models.IntegerField(default=0)
    files_done = models.IntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    new_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    problem = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} ({self.state})"


class HeldParty(models.Model):
    """On a holder: a party whose shares this node keeps, and the quota this node grants it.
    A party of this node's own is held with no holding thread."""

    party = models.CharField(primary_key=True, max_length=HEX32)
    hold_thread = models.CharField(max_length=HEX32, blank=True)
    label = models.CharField(max_length=LABEL, blank=True)
    quota = models.BigIntegerField(default=0)
    used = models.BigIntegerField(default=0)
    active = models.BooleanField(default=True)
    added_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"held party {self.party[:12]}"


class HeldShare(models.Model):
    """On a holder: one share it keeps (the bytes are ``held.path_of``)."""

    party = models.ForeignKey(HeldParty, on_delete=models.CASCADE, related_name="shares")
    digest = models.CharField(max_length=HEX32)
    size = models.IntegerField()
    stored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["party", "digest"], name="storage_held_once")
        ]

    def __str__(self) -> str:
        return f"share {self.digest[:12]}"


class DepositMark(models.Model):
    """On the owner: how far one of the party's threads (the control and storage threads) was
    deposited with a friend who holds shares (``deposit.py``): this node's log position sent."""

    holder = models.CharField(max_length=HEX32)  # the holder's device key
    thread_id = models.CharField(max_length=HEX32)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["holder", "thread_id"], name="storage_deposit_once")
        ]

    def __str__(self) -> str:
        return f"deposit {self.thread_id[:12]} to {self.holder[:12]}"
