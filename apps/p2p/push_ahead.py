"""A local write's push, read in the writer's own thread right after its commit.

The first flight of a push (``openings``: each member device's access, the new ops and this
node's vector) read by the p2p node costs two thread hand-offs on the way of every push: from
the event loop to a worker thread and back, each waiting for the interpreter while the writer's
thread goes on answering its request. On a loaded machine that was 2.7 ms of the 3.5 ms from a
write's commit to its opening in hand, for 0.75 ms of reading. The writer's thread has just
committed and holds no lock: ``client.notify`` reads the openings there and hands them to the
node with the news, and the node sends them at once (``SyncSessions._push_now``).

Nothing here is trusted more than the node's own read: the same ``openings_read``, from the
same vectors. Only which devices to read for and the vectors they last said come from the
node's memory (``SyncSessions.push_requests``, safe from any thread). A read that fails is
left to the node, which reads its own as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apps.p2p.openings import Opening, openings_read

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

logger = logging.getLogger(__name__)


def push_ahead(node: SereusNode, thread: bytes) -> dict[bytes, Opening] | None:
    """The openings of a push of ``thread`` to each member device the node knows, per device;
    None when there is nobody to push to or the read failed (the node reads its own)."""
    from apps.p2p.protocols.sync import LIMITS  # libp2p is loaded: a node runs here

    requests = node.push_requests(thread)
    if not requests:
        return None
    try:
        found = openings_read(thread, requests, **LIMITS)
    except Exception:  # the write stands; the node's own read tells what is wrong
        logger.debug("reading the push of %s ahead failed", thread.hex()[:12], exc_info=True)
        return None
    return {device: opening for (device, _known), opening in zip(requests, found, strict=True)}
