"""Reversible mapping between Teams MRIs and Matrix localparts.

Matrix localparts allow only `a-z 0-9 . _ = - /`; MRIs contain `:` and may contain capitals.
Lowercase letters, digits, `-` and `.` pass through, `_` becomes `__`, a capital `X` becomes
`_x`, and every other byte becomes `=xx` (lowercase hex), so distinct MRIs never collide and a
hostile MRI cannot inject anything into a Matrix ID.
"""

from __future__ import annotations

import functools
import re

_PLAIN = set("abcdefghijklmnopqrstuvwxyz0123456789-.")
_ESCAPED = re.compile(r"__|_[a-z]|=[0-9a-f]{2}|[a-z0-9.\-]")


def escape_mri(mri: str) -> str:
    out: list[str] = []
    for char in mri:
        if char in _PLAIN:
            out.append(char)
        elif char == "_":
            out.append("__")
        elif "A" <= char <= "Z":
            out.append("_" + char.lower())
        else:
            out.extend(f"={byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


# Every event from a ghost is checked with this (is it a ghost?), a few times each.
@functools.lru_cache(maxsize=1024)
def unescape_mri(localpart: str) -> str | None:
    """Invert escape_mri; None if the text is not something escape_mri can produce."""
    raw = bytearray()
    pos = 0
    while pos < len(localpart):
        match = _ESCAPED.match(localpart, pos)
        if not match:
            return None
        token = match.group(0)
        if token == "__":
            raw += b"_"
        elif token.startswith("_"):
            raw += token[1].upper().encode()
        elif token.startswith("="):
            raw.append(int(token[1:], 16))
        else:
            raw += token.encode()
        pos = match.end()
    try:
        mri = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return mri if escape_mri(mri) == localpart else None
