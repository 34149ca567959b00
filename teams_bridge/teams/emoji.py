"""Teams reaction keys ⇄ Unicode emoji (teams-protocol.md §4.10).

Teams names reactions three ways: the quick six and older Skype short names
(``like``, ``smile``), ``<hex code points>_<name>`` ids (``1f6a5_horizontaltrafficlight``)
and custom emoji ``<name>;<object id>`` (shown as ``:name:``, as are unknown names).
Going the other way, the quick six keep their names, ``:name:`` becomes ``name`` again,
and every other emoji becomes a ``<hex>_<name>`` key built from its code points, so
``reaction_key_to_unicode(unicode_to_reaction_key(e))`` gives ``e`` back (a lone
text-style symbol such as ``☀`` comes back in its emoji form ``☀️``).
"""

from __future__ import annotations

import re
import unicodedata

VS16 = "\ufe0f"
ZWJ = "\u200d"

QUICK_REACTIONS: dict[str, str] = {
    "like": "\U0001f44d",  # 👍
    "heart": "\u2764\ufe0f",  # ❤️
    "laugh": "\U0001f606",  # 😆
    "surprised": "\U0001f62e",  # 😮
    "sad": "\U0001f622",  # 😢
    "angry": "\U0001f620",  # 😠
}

# Older Skype/Teams short names still seen on messages (a common subset).
LEGACY_REACTIONS: dict[str, str] = {
    "smile": "\U0001f642",  # 🙂
    "happy": "\U0001f60a",  # 😊
    "blush": "\U0001f60a",  # 😊
    "grinning": "\U0001f600",  # 😀
    "joy": "\U0001f602",  # 😂
    "rofl": "\U0001f923",  # 🤣
    "wink": "\U0001f609",  # 😉
    "cry": "\U0001f62d",  # 😭
    "cool": "\U0001f60e",  # 😎
    "kiss": "\U0001f618",  # 😘
    "inlove": "\U0001f60d",  # 😍
    "tongueout": "\U0001f61b",  # 😛
    "mmm": "\U0001f60b",  # 😋
    "speechless": "\U0001f610",  # 😐
    "dull": "\U0001f611",  # 😑
    "unamused": "\U0001f612",  # 😒
    "sweat": "\U0001f613",  # 😓
    "confused": "\U0001f615",  # 😕
    "worry": "\U0001f61f",  # 😟
    "sleepy": "\U0001f62a",  # 😪
    "yawn": "\U0001f971",  # 🥱
    "puke": "\U0001f92e",  # 🤮
    "smirk": "\U0001f60f",  # 😏
    "think": "\U0001f914",  # 🤔
    "nerd": "\U0001f913",  # 🤓
    "hug": "\U0001f917",  # 🤗
    "giggle": "\U0001f92d",  # 🤭
    "lipssealed": "\U0001f910",  # 🤐
    "party": "\U0001f973",  # 🥳
    "angel": "\U0001f607",  # 😇
    "devil": "\U0001f608",  # 😈
    "evilgrin": "\U0001f608",  # 😈
    "yes": "\U0001f44d",  # 👍
    "no": "\U0001f44e",  # 👎
    "thumbsup": "\U0001f44d",  # 👍
    "thumbsdown": "\U0001f44e",  # 👎
    "ok": "\U0001f44c",  # 👌
    "clap": "\U0001f44f",  # 👏
    "wave": "\U0001f44b",  # 👋
    "hi": "\U0001f44b",  # 👋
    "muscle": "\U0001f4aa",  # 💪
    "fingerscrossed": "\U0001f91e",  # 🤞
    "facepalm": "\U0001f926",  # 🤦
    "pray": "\U0001f64f",  # 🙏
    "handshake": "\U0001f91d",  # 🤝
    "victory": "\u270c\ufe0f",  # ✌️
    "brokenheart": "\U0001f494",  # 💔
    "star": "\u2b50",  # ⭐
    "sun": "\u2600\ufe0f",  # ☀️
    "coffee": "\u2615",  # ☕
    "cake": "\U0001f382",  # 🎂
    "gift": "\U0001f381",  # 🎁
    "beer": "\U0001f37a",  # 🍺
    "pizza": "\U0001f355",  # 🍕
    "fire": "\U0001f525",  # 🔥
    "poop": "\U0001f4a9",  # 💩
    "skull": "\U0001f480",  # 💀
    "ghost": "\U0001f47b",  # 👻
    "rainbow": "\U0001f308",  # 🌈
    "flower": "\U0001f338",  # 🌸
    "idea": "\U0001f4a1",  # 💡
    "bomb": "\U0001f4a3",  # 💣
    "rocket": "\U0001f680",  # 🚀
    "tada": "\U0001f389",  # 🎉
    "eyes": "\U0001f440",  # 👀
    "hundred": "\U0001f4af",  # 💯
    "check": "\u2705",  # ✅
    "cross": "\u274c",  # ❌
}

_QUICK_BY_EMOJI = {value.replace(VS16, ""): key for key, value in QUICK_REACTIONS.items()}
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_MODIFIERS = frozenset({0xFE0E, 0xFE0F, 0x200D, 0x20E3, *_SKIN_TONES})
_REGIONAL = range(0x1F1E6, 0x1F200)
_HEX_RE = re.compile(r"^[0-9a-f]{4,6}$")
_SHORTCODE_RE = re.compile(r"^:([a-z0-9_+-]{1,64}):$")


def _text_default(cp: int) -> bool:
    """Symbols that render as text unless followed by VS16 (☀, ❤, ©)."""
    return cp in (0xA9, 0xAE) or 0x2000 <= cp <= 0x32FF


def _hex_code_point(segment: str) -> int | None:
    """A code point from a ``<hex>`` key segment (at least one decimal digit, so words
    such as ``face`` or ``cafe`` are not mistaken for one)."""
    text = segment.lower()
    if not _HEX_RE.match(text) or not any(ch.isdigit() for ch in text):
        return None
    cp = int(text, 16)
    if cp < 0x20 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        return None
    if unicodedata.category(chr(cp)) == "Cc":
        return None
    return cp


def _hex_segment(cp: int) -> str:
    text = f"{cp:04x}"
    return text if any(ch.isdigit() for ch in text) else "0" + text


def _decode_hex_key(key: str) -> str | None:
    parts = key.split("_")
    points: list[int] = []
    for part in parts[:-1]:  # the last segment is always the name
        cp = _hex_code_point(part)
        if cp is None:
            break
        points.append(cp)
    if not points:
        return None
    if len(points) == 1 and _text_default(points[0]):
        points.append(0xFE0F)
    return "".join(chr(cp) for cp in points)


def reaction_key_to_unicode(key: str) -> str:
    """The emoji for a Teams reaction key; unknown names become ``:name:``.

    Raises ``ValueError`` for an empty key.
    """
    text = key.strip()
    if not text:
        raise ValueError("empty reaction key")
    if ";" in text:  # custom emoji: <name>;<object id>
        name = text.split(";", 1)[0].strip()
        return f":{name or 'custom'}:"
    lowered = text.lower()
    known = QUICK_REACTIONS.get(lowered) or LEGACY_REACTIONS.get(lowered)
    if known is not None:
        return known
    name, sep, tone = lowered.rpartition("_")
    base = QUICK_REACTIONS.get(name) or LEGACY_REACTIONS.get(name)
    if sep and base is not None:  # <name>_<skin tone>, e.g. like_1f3fd
        cp = _hex_code_point(tone)
        if cp is not None and cp in _SKIN_TONES:
            return base.replace(VS16, "") + chr(cp)
    decoded = _decode_hex_key(lowered)
    if decoded is not None:
        return decoded
    return f":{text}:"


def _emoji_name(points: list[int]) -> str:
    regional = [cp for cp in points if cp in _REGIONAL]
    if len(regional) == 2 and len(points) == 2:
        return "flag" + "".join(chr(ord("a") + cp - _REGIONAL.start) for cp in regional)
    for cp in points:
        if cp in _MODIFIERS:
            continue
        name = re.sub(r"[^a-z0-9]", "", unicodedata.name(chr(cp), "").lower())
        return name or "emoji"
    return "emoji"


def unicode_to_reaction_key(emoji: str) -> str:
    """The Teams key for an emoji: the quick six by name, ``:name:`` as ``name``, anything
    else as ``<hex code points joined by _>_<name>`` (``"emoji"`` when Unicode has no name).

    Raises ``ValueError`` for an empty string.
    """
    text = emoji.strip()
    if not text:
        raise ValueError("empty reaction")
    quick = _QUICK_BY_EMOJI.get(text.replace(VS16, ""))
    if quick is not None:
        return quick
    shortcode = _SHORTCODE_RE.match(text.lower())
    if shortcode:  # ``:name:``, what unknown and custom keys turn into
        return shortcode.group(1)
    points = [ord(ch) for ch in text]
    if len(points) == 2 and points[1] == 0xFE0F and _text_default(points[0]):
        points = points[:1]
    return "_".join(_hex_segment(cp) for cp in points) + "_" + _emoji_name(points)
