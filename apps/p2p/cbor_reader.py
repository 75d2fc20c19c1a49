"""Reading CBOR by hand, for the frames of the Sereus protocols (``frames``): a cursor that reads
item heads and strings and steps over items, building nothing the caller did not ask for, and
counting every head against a budget (a frame's ``MAX_ITEMS``) before anything inside is read.
"""

from __future__ import annotations

import cbor2

UINT, NEGINT, BYTES, TEXT, ARRAY, MAP, TAG, SIMPLE = range(8)  # CBOR's major types
NULL = 22  # the simple value null (major type 7)


class FrameError(ValueError):
    """A frame that is not acceptable; the message says why."""


class Reader:
    """A cursor over a frame's bytes that reads CBOR heads and strings, and nothing else: callers
    decide what each item must be, so nothing is built that the schema does not want."""

    __slots__ = ("data", "end", "items", "max_items", "pos", "raw")

    def __init__(self, data: bytes | bytearray, max_items: int) -> None:
        self.raw = data  # for ``startswith`` at an offset (no slice made)
        self.data = memoryview(data)
        self.pos = 0
        self.end = len(data)
        self.items = 0  # heads read so far, against ``max_items``
        self.max_items = max_items

    def head(self) -> tuple[int, int]:
        """The next item's major type and argument (a length, a count or a value)."""
        if self.pos >= self.end:
            raise FrameError("not valid CBOR: the frame ends inside an item")
        self.items += 1
        if self.items > self.max_items:
            raise FrameError(f"more than {self.max_items} CBOR items in one frame")
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            argument = info
        elif info <= 27:
            size = 1 << (info - 24)
            if self.pos + size > self.end:
                raise FrameError("not valid CBOR: the frame ends inside an item")
            argument = int.from_bytes(self.data[self.pos : self.pos + size], "big")
            self.pos += size
        elif info == 31:
            raise FrameError("not valid CBOR: indefinite lengths are not allowed")
        else:
            raise FrameError(f"not valid CBOR: reserved additional information {info}")
        if major == TAG:
            raise FrameError(f"not valid CBOR: semantic tag {argument} is not allowed")
        return major, argument

    def take(self, size: int) -> memoryview:
        """The next ``size`` bytes (a string's content), without copying them."""
        if size > self.end - self.pos:
            raise FrameError("not valid CBOR: the frame ends inside a string")
        start = self.pos
        self.pos += size
        return self.data[start : self.pos]

    def skip(self) -> None:
        """Step over one item, nested ones included, building nothing. Counts are checked
        against what is left of the item budget before anything inside is read."""
        pending = 1
        while pending:
            pending -= 1
            major, argument = self.head()
            if major in (BYTES, TEXT):
                self.take(argument)
            elif major in (ARRAY, MAP):
                pending += argument * (2 if major == MAP else 1)
                if pending > self.max_items - self.items:
                    raise FrameError(f"more than {self.max_items} CBOR items in one frame")

    def text(self, argument: int, what: str) -> str:
        try:
            return str(self.take(argument), "utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(f"not valid CBOR: {what} is not UTF-8") from exc

    def at(self, pos: int) -> Reader:
        """Go to a field's value found by ``_fields``."""
        self.pos = pos
        return self


def describe(reader: Reader, pos: int) -> str:
    """A short rendering of the item at ``pos`` for an error message (small items only)."""
    start = reader.pos = pos
    reader.skip()
    if reader.pos - start > 64:
        return "a value"
    return repr(cbor2.loads(bytes(reader.data[start : reader.pos])))
