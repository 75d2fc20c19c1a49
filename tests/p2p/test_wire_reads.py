"""How a ``FrameChannel`` reads frames off a stream: one stream read per arrival, whatever the
arrival holds (several frames, or part of one), because every read of a muxed stream makes the
muxer send the peer a window update, a write of its own on the push's way. Frames split anywhere
come out whole; the stream's end between frames, inside a length and inside a body are told
apart as before; limits hold on the announced length."""

from __future__ import annotations

import pytest
import trio
from libp2p.io.exceptions import IncompleteReadError
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.utils import encode_uvarint, encode_varint_prefixed

from apps.p2p import frames
from apps.p2p.limits import PeerLimits
from apps.p2p.wire import FrameChannel, PeerFault, StreamEnded

THREAD = bytes(range(32))
HELLO = frames.Hello(THREAD)
DONE = frames.Done({b"\x01" * 32: 3}, {b"\x01" * 32: b"\x02" * 32}, {})
OPS = frames.Ops([b"\x07" * 300, b"\x08" * 200])  # over 127 bytes: a two-byte length


def wire(*items: frames.Frame) -> bytes:
    return b"".join(encode_varint_prefixed(frames.encode(item)) for item in items)


class Arrivals:
    """A stream whose data arrives in the given pieces; each read takes (at most ``n`` bytes
    of) the next piece, as a muxed stream hands over what has arrived."""

    def __init__(self, *pieces: bytes, eof: bool = True) -> None:
        self.pieces = [bytearray(piece) for piece in pieces]
        self.eof = eof
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        await trio.lowlevel.checkpoint()
        if not self.pieces:
            if self.eof:
                raise StreamEOF
            await trio.sleep_forever()
        piece = self.pieces[0]
        taken = bytes(piece[: n or len(piece)])
        del piece[: len(taken)]
        if not piece:
            self.pieces.pop(0)
        return taken


def read_all(stream: Arrivals, count: int, **kwargs) -> tuple[list, FrameChannel]:
    channel = FrameChannel(stream, "peer", PeerLimits())  # type: ignore[arg-type]

    async def main() -> list:
        return [await channel.read(**kwargs) for _ in range(count)]

    return trio.run(main), channel


def test_frames_that_arrive_together_take_one_read():
    stream = Arrivals(wire(OPS, DONE))
    got, channel = read_all(stream, 2)
    assert got == [OPS, DONE]
    assert stream.reads == 1, "one read of the stream for the whole arrival"
    assert not channel.leftover
    assert channel.bytes_in == len(frames.encode(OPS)) + len(frames.encode(DONE))


@pytest.mark.parametrize("cut", [1, 2, 3, 50, -1])
def test_a_frame_split_anywhere_comes_out_whole(cut):
    data = wire(OPS, HELLO)
    stream = Arrivals(data[:cut], data[cut:])
    got, _channel = read_all(stream, 2)
    assert got == [OPS, HELLO]


def test_a_frame_arriving_byte_by_byte_comes_out_whole():
    data = wire(HELLO, OPS)
    got, _channel = read_all(Arrivals(*[bytes([b]) for b in data]), 2)
    assert got == [HELLO, OPS]


def test_bytes_past_the_frames_read_stay_for_the_next_read_and_are_told():
    data = wire(HELLO, DONE)
    stream = Arrivals(data, eof=False)
    got, channel = read_all(stream, 1)
    assert got == [HELLO]
    assert channel.leftover, "the Done is buffered"


def test_the_end_between_frames_is_a_normal_end():
    with pytest.raises(StreamEnded):
        read_all(Arrivals(wire(HELLO)), 2)


def test_the_end_inside_a_body_is_the_peers_fault():
    data = wire(OPS)
    with pytest.raises(PeerFault, match="inside a frame"):
        read_all(Arrivals(data[:-5]), 1)


def test_the_end_inside_a_length_is_not_a_fault_as_before():
    # A two-byte length cut after its first byte: an incomplete read, as libp2p's own varint
    # reader said it (a broken stream, not proof of a hostile peer).
    with pytest.raises(IncompleteReadError):
        read_all(Arrivals(encode_uvarint(300)[:1]), 1)


def test_an_over_long_length_is_refused():
    with pytest.raises(PeerFault, match="bad frame length"):
        read_all(Arrivals(b"\xff" * 11), 1)


def test_a_length_over_the_limit_is_refused_before_the_body_is_waited_for():
    announced = encode_uvarint(frames.FIRST_FRAME + 1) + b"\x00" * 10
    stream = Arrivals(announced, eof=False)  # the rest never comes
    with pytest.raises(PeerFault, match=f"the limit is {frames.FIRST_FRAME}"):
        read_all(stream, 1, max_frame=frames.FIRST_FRAME)
