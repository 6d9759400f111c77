"""Real PNG files of an exact size, built with the stdlib (zlib, struct) and streamed in pieces.

A picture is a small square shaded from its colour at the top to a darker tone at the bottom;
it is padded to the size asked for with a private ancillary chunk (`baTc`, which PNG readers
skip), so a 64 KiB or a 100 MB file costs the same to build and the server never holds the
padding: `PngFile.pieces()` yields the head, the zero padding in blocks, then the tail with the
padding's CRC computed on the way.

    >>> image = PngFile((200, 40, 90), 2048)
    >>> data = b"".join(image.pieces())
    >>> len(data), data[:8] == PNG_SIGNATURE, data[-12:-8]
    (2048, True, b'\\x00\\x00\\x00\\x00')
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIDE = 128
"""Width and height of every picture, in pixels."""
PADDING_TYPE = b"baTc"  # lower-case first letter: ancillary, safe for readers to ignore
BLOCK = 64 * 1024
"""The padding is streamed in blocks of this many bytes."""
_CHUNK_OVERHEAD = 12  # length, type, CRC
_SUB_FILTER = 1  # each byte minus its left neighbour: a shaded row compresses to nothing


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _picture(colour: tuple[int, int, int]) -> bytes:
    """Signature, IHDR and IDAT of a SIDE x SIDE RGB picture shaded from `colour` downwards."""
    rows = []
    for y in range(SIDE):
        shade = 1.0 - 0.6 * y / (SIDE - 1)
        pixel = bytes(int(channel * shade) for channel in colour)
        # Sub filter: the first pixel as is, then zero differences along the row.
        rows.append(bytes([_SUB_FILTER]) + pixel + bytes(3 * (SIDE - 1)))
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    compressed = zlib.compress(b"".join(rows), 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", compressed)


_IEND = _chunk(b"IEND", b"")


class PngFile:
    """A PNG of exactly `size` bytes showing `colour` (ValueError if `size` is too small)."""

    __slots__ = ("_picture", "padding", "size")

    def __init__(self, colour: tuple[int, int, int], size: int) -> None:
        self._picture = _picture(colour)
        self.size = size
        self.padding = size - len(self._picture) - _CHUNK_OVERHEAD - len(_IEND)
        """Bytes of zeros in the padding chunk."""
        if self.padding < 0:
            raise ValueError(f"a PNG of this picture needs at least {size - self.padding} bytes")

    def pieces(self) -> Iterator[bytes]:
        """The file's bytes in order, the padding in blocks of at most `BLOCK` bytes."""
        yield self._picture + struct.pack(">I", self.padding) + PADDING_TYPE
        crc = zlib.crc32(PADDING_TYPE)
        block = bytes(min(BLOCK, self.padding))
        left = self.padding
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
            yield piece
        yield struct.pack(">I", crc) + _IEND
