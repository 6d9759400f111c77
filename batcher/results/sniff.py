"""What kind of image a file is, by its first bytes (its "magic"), not by what it is called.

A CDN's error page served with HTTP 200 is HTML, not a PNG; the downloader checks the first
bytes of every body against the type the API announced (docs/results.md).

>>> image_type(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR"), image_type(b"<!DOCTYPE html>")
('png', None)
>>> normalized_type("JPG"), normalized_type(".webp"), normalized_type("image")
('jpeg', 'webp', '')
"""

from __future__ import annotations

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_HEIF_BRANDS = {b"avif": "avif", b"avis": "avif", b"heic": "heic", b"heix": "heic",
                b"mif1": "heic", b"msf1": "heic"}
_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heif": "heic"}
KNOWN_TYPES = frozenset({"png", "jpeg", "gif", "bmp", "tiff", "webp", "avif", "heic"})


def image_type(head: bytes) -> str | None:
    """The image format the bytes `head` (the first 16 or more of a file) begin, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[head[8:12]]
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def normalized_type(announced: str) -> str:
    """An announced type (a `FileType`, an extension, a MIME subtype) as `image_type` names it;
    "" when it names no format we know (then any image is accepted)."""
    name = announced.strip().lower().lstrip(".")
    name = _ALIASES.get(name, name)
    return name if name in KNOWN_TYPES else ""
