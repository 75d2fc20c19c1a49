"""The Sereus protocols on libp2p streams: ``sync``, ``invite``, ``blob`` and ``live``
(DESIGN §8, §9).

The protocol ids live here, apart from the protocol code, so tools that only speak the wire
format (tests' hostile peers) need no Django.
"""

from libp2p.custom_types import TProtocol

SYNC_PROTOCOL = TProtocol("/sereus/sync/1.0.0")
INVITE_PROTOCOL = TProtocol("/sereus/invite/1.0.0")
BLOB_PROTOCOL = TProtocol("/sereus/blob/1.0.0")
LIVE_PROTOCOL = TProtocol("/sereus/live/1.0.0")
