"""Names from Teams (display names, chat topics) made fit to show and to store.

Teams accepts names that Matrix and the database do not: PostgreSQL refuses a NUL in a text
column, homeservers refuse long display names (Synapse: 256 characters), and bidi overrides
or invisible characters let a name pose as something else ("Eve \\u202eexe.gnp" shows as
"Eve png.exe"). Every such name passes through ``clean_name`` before it is stored or sent.
"""

from __future__ import annotations

import re
import unicodedata

# The longest display name a homeserver takes. Synapse counts 256 characters; counting
# bytes instead keeps within every homeserver's limit, whatever the script.
DISPLAYNAME_MAX_BYTES = 256
# The spec once capped room names at 255 bytes; clients and some servers still assume it.
ROOM_NAME_MAX_BYTES = 255
# One member's part of a room name made of several members' names.
MEMBER_IN_ROOM_NAME_MAX_BYTES = 64

ELLIPSIS = "\u2026"
ZWJ, ZWNJ = "\u200d", "\u200c"
# Joiners shape emoji sequences and Persian or Indic names, so they stay between letters;
# elsewhere (at the ends, in runs, next to spaces) they only hide something.
_JOINERS = ZWJ + ZWNJ
_JOINER_RUN = re.compile(f"[{_JOINERS}]{{2,}}")
_LOOSE_JOINER = re.compile(f"(?:^|(?<= ))[{_JOINERS}]|[{_JOINERS}](?= |$)")
_SPACES = re.compile(" {2,}")
# Control characters that separate words become a space; the others are dropped.
_SPACE_CONTROLS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85")
# Invisible characters outside the format category: Hangul fillers (popular for blank
# names), the braille blank, the combining grapheme joiner and the Khmer inherent vowels.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
# Combining marks kept on one character: real scripts need a few, "Zalgo" text hundreds.
MAX_MARKS = 8


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def clean_name(text: str | None, max_bytes: int) -> str:
    """``text`` in NFC without control, format (bidi, zero-width, tag) or other invisible
    characters, with whitespace collapsed to single spaces, cut to at most ``max_bytes``
    bytes of UTF-8 on a character boundary (an ellipsis shows the cut).

    Empty when nothing visible is left; callers then keep the name they had.
    """
    if not text or max_bytes <= 0:
        return ""
    kept: list[str] = []
    marks = 0
    for char in unicodedata.normalize("NFC", text):
        category = unicodedata.category(char)
        marks = marks + 1 if category in ("Mn", "Me") else 0
        if char in _JOINERS:
            kept.append(char)
        elif char in _SPACE_CONTROLS or category in ("Zs", "Zl", "Zp"):
            kept.append(" ")
        elif (
            category in ("Cc", "Cf", "Cs")
            or char in _INVISIBLE
            or _is_noncharacter(ord(char))
            or marks > MAX_MARKS
        ):
            continue
        else:
            kept.append(char)
    return _fit(_tidy("".join(kept)), max_bytes)


def _tidy(text: str) -> str:
    """Runs of joiners made one, joiners next to a space or an end dropped, runs of spaces
    made one, spaces at the ends dropped."""
    text = _JOINER_RUN.sub(lambda m: m.group()[0], text)
    return _SPACES.sub(" ", _LOOSE_JOINER.sub("", text)).strip(" ")


def _fit(name: str, max_bytes: int) -> str:
    encoded = name.encode("utf-8")
    if len(encoded) <= max_bytes:
        return name
    # With an ellipsis to show the cut; with too little room for one, without.
    for room, tail in ((max_bytes - len(ELLIPSIS.encode("utf-8")), ELLIPSIS), (max_bytes, "")):
        cut = _tidy(encoded[:room].decode("utf-8", "ignore")) if room > 0 else ""
        if cut:
            return cut + tail
    return ""


def clean_topic(text: str | None) -> str | None:
    """A Teams chat topic as it may be stored and shown as a room name (``None``: none)."""
    return clean_name(text, ROOM_NAME_MAX_BYTES) or None
