"""A mirror between real nodes (slow): added with a device link, it keeps the thread's ops and
its attachment chunks as they are (ciphertext), takes a later write by sync like any device of
the thread (``threads_io.use(mirror_io)``), and has none of the plaintext on its disk."""

from __future__ import annotations

import pytest

from tests.support import cadre
from tests.support.api import wait_for
from tests.support.attachments import chunk_files, png, random_bytes, upload
from tests.support.cadre import peers  # noqa: F401 (the fixture)
from tests.support.messaging import conversation_create, send
from tests.support.p2p import Peer

pytestmark = pytest.mark.slow


def test_a_mirror_keeps_ops_and_chunks_and_takes_later_writes_by_sync(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
) -> None:
    (a,) = cadre.start_all(peers, Peer(tmp_path / "a"))
    thread = conversation_create(a, "Album-5e21")
    upload(a, thread, "Summer-9d04", [("p.png", png()), ("data.bin", random_bytes(1_500_000))])
    chunks = chunk_files(a, thread)
    assert len(chunks) >= 3
    (mirror,) = cadre.start_all(peers, Peer(tmp_path / "mirror", env={"SEREUS_MIRROR": "on"}))
    cadre.device_add(a, mirror, kind="mirror", label="box")

    cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))
    # The chunks come once A names them (its roster push) and the mirror fetches them.
    wait_for(
        lambda: chunk_files(mirror, thread) == chunks,
        timeout=60,
        interval=0.5,
        what="the mirror to hold the attachment's chunks",
    )
    # A later write reaches the mirror by sync (a push), not by the join's fetch.
    send(a, thread, "Autumn-47aa")
    cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))

    mirror.stop()
    for text in ("Album-5e21", "Summer-9d04", "Autumn-47aa"):
        assert not cadre.folder_holds(mirror.data_dir, text.encode()), text
