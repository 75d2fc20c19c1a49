"""The storage API's input and output shapes. Every name starts with ``Storage``: the schema has
one namespace for components, and a clash with another app's fails ``check --deploy``."""

from __future__ import annotations

from rest_framework import serializers

from apps.storage.forms import KEEP_MAX, PATH_MAX, QUOTA_MB_MAX
from apps.storage.models import LABEL

# -- input -----------------------------------------------------------------------------------------


class StorageBackupInput(serializers.Serializer):
    path = serializers.CharField(
        max_length=PATH_MAX, help_text="The whole path of a folder on this node."
    )
    label = serializers.CharField(max_length=LABEL, required=False, default="", allow_blank=True)


class StorageRestoreInput(serializers.Serializer):
    snapshot = serializers.CharField(
        max_length=64, help_text="The backup's id (from the list), or latest."
    )
    target = serializers.CharField(
        max_length=PATH_MAX, help_text="An empty folder on this node (made if missing)."
    )
    paths = serializers.ListField(
        child=serializers.CharField(max_length=PATH_MAX),
        required=False,
        max_length=1000,
        help_text="Only these files or folders of the backup (all when absent).",
    )


class StorageInviteInput(serializers.Serializer):
    quota_mb = serializers.IntegerField(min_value=1, max_value=QUOTA_MB_MAX)
    label = serializers.CharField(max_length=LABEL, required=False, default="", allow_blank=True)


class StorageRetentionSerializer(serializers.Serializer):
    keep_last = serializers.IntegerField(min_value=0, max_value=KEEP_MAX)
    keep_daily = serializers.IntegerField(min_value=0, max_value=KEEP_MAX)
    keep_weekly = serializers.IntegerField(min_value=0, max_value=KEEP_MAX)
    keep_monthly = serializers.IntegerField(min_value=0, max_value=KEEP_MAX)


class StorageGrantInput(serializers.Serializer):
    quota_mb = serializers.IntegerField(min_value=0, max_value=QUOTA_MB_MAX)


# -- output ----------------------------------------------------------------------------------------


class StorageJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="backup or restore.")
    state = serializers.CharField(help_text="queued, running, done or failed.")
    words = serializers.CharField(help_text="How far it is, in words.")
    percent = serializers.IntegerField(min_value=0, max_value=100)
    running = serializers.BooleanField()
    files_done = serializers.IntegerField()
    files_total = serializers.IntegerField()
    bytes_done = serializers.IntegerField()
    bytes_total = serializers.IntegerField()
    new_bytes = serializers.IntegerField(help_text="Backup: data new to your backups.")
    stored_bytes = serializers.IntegerField(help_text="Backup: bytes of shares placed for it.")
    snapshot = serializers.CharField(allow_null=True, help_text="The backup made or restored.")
    source = serializers.CharField(allow_blank=True)
    target = serializers.CharField(allow_blank=True)
    label = serializers.CharField(allow_blank=True)
    problem = serializers.CharField(allow_blank=True, help_text="Why it stopped, in words.")


class StorageSnapshotOutput(serializers.Serializer):
    id = serializers.CharField(source="pk")
    label = serializers.CharField(allow_blank=True)
    source = serializers.CharField(help_text="The folder backed up, as its device names it.")
    device = serializers.CharField(help_text="The device that made it (hex key).")
    device_label = serializers.CharField(allow_blank=True)
    started_ms = serializers.IntegerField()
    finished_ms = serializers.IntegerField(allow_null=True)
    state = serializers.CharField(help_text="running, complete or failed.")
    problem = serializers.CharField(allow_blank=True)
    files = serializers.IntegerField()
    dirs = serializers.IntegerField()
    bytes = serializers.IntegerField()
    new_bytes = serializers.IntegerField()
    stored_bytes = serializers.IntegerField()


class StorageFileOutput(serializers.Serializer):
    path = serializers.CharField(help_text="Relative to the backed-up folder, /-separated.")
    name = serializers.CharField()
    kind = serializers.CharField(help_text="file, dir or link.")
    size = serializers.IntegerField()
    mtime_ns = serializers.IntegerField()
    mode = serializers.IntegerField()
    target = serializers.CharField(allow_blank=True, help_text="A link's target.")


class StorageFilePageOutput(serializers.Serializer):
    path = serializers.CharField(allow_blank=True, help_text="The folder listed.")
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    total = serializers.IntegerField()
    entries = StorageFileOutput(many=True)


class StorageHolderOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="device (yours) or peer (a friend's node).")
    device = serializers.CharField(allow_blank=True)
    state = serializers.CharField()
    state_words = serializers.CharField()
    problem = serializers.CharField(allow_blank=True)
    quota = serializers.IntegerField()
    used = serializers.IntegerField()
    free = serializers.IntegerField()
    shares = serializers.IntegerField(help_text="Shares placed on it.")
    at_risk = serializers.IntegerField(help_text="Chunks with a share here that cannot lose one.")
    verified_ms = serializers.IntegerField(allow_null=True)
    seen_ms = serializers.IntegerField(allow_null=True)


class StorageTotalsOutput(serializers.Serializer):
    source_bytes = serializers.IntegerField()
    stored_bytes = serializers.IntegerField()
    chunks = serializers.IntegerField()
    at_risk = serializers.IntegerField()
    pending = serializers.IntegerField()
    k = serializers.IntegerField(allow_null=True)
    n = serializers.IntegerField(allow_null=True)


class StorageHoldersOutput(serializers.Serializer):
    holders = StorageHolderOutput(many=True)
    totals = StorageTotalsOutput()
    redundancy = serializers.CharField(help_text="How many holders restore everything, in words.")
    warnings = serializers.ListField(child=serializers.CharField())


class StorageInviteOutput(serializers.Serializer):
    link = serializers.CharField(help_text="The invite link for the friend's node.")


class StorageCheckOutput(serializers.Serializer):
    words = serializers.CharField()
    audit = serializers.DictField(child=serializers.IntegerField())
    repair = serializers.DictField(child=serializers.IntegerField())


class StoragePruneOutput(serializers.Serializer):
    words = serializers.CharField()
    snapshots = serializers.IntegerField()
    chunks = serializers.IntegerField()
    shares = serializers.IntegerField()


class StorageHeldOutput(serializers.Serializer):
    party = serializers.CharField(help_text="Their party id (hex).")
    label = serializers.CharField(allow_blank=True)
    used = serializers.IntegerField()
    quota = serializers.IntegerField()
    shares = serializers.IntegerField()
