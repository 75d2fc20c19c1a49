"""What the other member devices of a thread hold, as this node last heard it (node-local, the
``default`` database): for delivery, "which of the other side's devices hold this offer"
(``apps.core.threads.delivery``, ADR 22).

A device says its version vector (per device of the thread, the last seq it holds) in every
sync session; the p2p node keeps it in memory (``SyncSessions.vv_seen``) and writes it here a
moment later, coalesced, so pages and the API can read it from any process.
"""

from django.db import models


class PeerVector(models.Model):
    """One member device's version vector in one thread, as it last said it in a sync session
    with this node."""

    thread = models.ForeignKey("core.Thread", on_delete=models.CASCADE, related_name="vectors")
    device_id = models.CharField(max_length=64)  # hex
    # {device hex: last seq held}: the device holds every op of that device up to that seq
    # (sync sends a device's ops in order).
    vv = models.JSONField(default=dict)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["thread", "device_id"], name="peer_vector_once")
        ]

    def __str__(self) -> str:
        return f"vector of {self.device_id[:12]}"
