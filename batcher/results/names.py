"""Output file names: stable across runs, readable in a file manager, unique per task and output.

`<row>-<prompt slug>-<key prefix>[-<n>].<ext>`: the task's 1-based position in the manifest
(zero-padded to 4 digits, so they sort), the prompt's first words in lower-case ASCII, the first
8 hex digits of the task key (unique), and for a task's second and later outputs their number.

>>> file_name(7, "A cat in Watercolor style!", "0123456789abcdef0123456789abcdef", 0, "png")
'0007-a-cat-in-watercolor-style-01234567.png'
>>> file_name(12, "", "fedcba9876543210fedcba9876543210", 1, "JPEG")
'0012-image-fedcba98-2.jpg'
"""

from __future__ import annotations

import re
import unicodedata

SLUG_MAX = 40
KEY_PREFIX = 8
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_EXTENSIONS = {"jpeg": "jpg", "": "png"}
_SAFE_EXTENSION = re.compile(r"[a-z0-9]{1,8}")


def slug(text: str) -> str:
    """The first words of `text` as `a-cat-in-watercolor` ("image" when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = _NOT_SLUG.sub("-", ascii_text).strip("-")
    if len(words) > SLUG_MAX:
        words = words[:SLUG_MAX].rsplit("-", 1)[0] or words[:SLUG_MAX]
    return words.strip("-") or "image"


def file_name(row: int, prompt: str, key: str, index: int, extension: str) -> str:
    """The name of output `index` (0-based) of the task at manifest position `row`."""
    ext = extension.lower().lstrip(".")
    ext = _EXTENSIONS.get(ext, ext)
    if not _SAFE_EXTENSION.fullmatch(ext):
        ext = "png"
    suffix = f"-{index + 1}" if index else ""
    return f"{row:04d}-{slug(prompt)}-{key[:KEY_PREFIX]}{suffix}.{ext}"
