"""Teams reaction keys ⇄ Unicode emoji."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teams_bridge.teams.emoji import (
    LEGACY_REACTIONS,
    QUICK_REACTIONS,
    reaction_key_to_unicode,
    unicode_to_reaction_key,
)

QUICK = {
    "like": "👍",
    "heart": "❤️",
    "laugh": "😆",
    "surprised": "😮",
    "sad": "😢",
    "angry": "😠",
}


@pytest.mark.parametrize(("key", "emoji"), sorted(QUICK.items()))
def test_quick_reactions_both_ways(key: str, emoji: str) -> None:
    assert reaction_key_to_unicode(key) == emoji
    assert reaction_key_to_unicode(key.upper()) == emoji
    assert unicode_to_reaction_key(emoji) == key


def test_heart_with_and_without_variation_selector() -> None:
    assert unicode_to_reaction_key("\u2764") == "heart"
    assert unicode_to_reaction_key("\u2764\ufe0f") == "heart"
    assert unicode_to_reaction_key("👍\ufe0f") == "like"


@pytest.mark.parametrize(
    ("key", "emoji"),
    [
        ("1f6a5_horizontaltrafficlight", "🚥"),
        ("1F600_GrinningFace", "😀"),
        ("1f44d_1f3fd_thumbsup", "👍🏽"),
        ("2764_fe0f_200d_1f525_heartonfire", "❤️\u200d🔥"),
        ("1f1fa_1f1f8_flagus", "🇺🇸"),
        ("2600_sun", "☀️"),  # a text-style symbol gets its emoji form
        ("1f44d_thumbs_up", "👍"),  # underscores inside the name
    ],
)
def test_hex_keys_decode_their_code_points(key: str, emoji: str) -> None:
    assert reaction_key_to_unicode(key) == emoji


@pytest.mark.parametrize(
    ("key", "emoji"),
    [
        ("smile", "🙂"),
        ("wink", "😉"),
        ("cry", "😭"),
        ("yes", "👍"),
        ("no", "👎"),
        ("cool", "😎"),
        ("victory", "✌️"),
    ],
)
def test_legacy_names(key: str, emoji: str) -> None:
    assert reaction_key_to_unicode(key) == emoji


def test_there_are_a_few_dozen_legacy_names() -> None:
    assert len(LEGACY_REACTIONS) >= 40
    assert set(QUICK_REACTIONS) == set(QUICK)


def test_skin_tone_suffix_on_a_named_key() -> None:
    assert reaction_key_to_unicode("like_1f3fb") == "👍🏻"


def test_custom_and_unknown_keys_become_shortcodes_and_come_back() -> None:
    assert reaction_key_to_unicode("partyparrot;0-wus-d2-0123456789abcdef") == ":partyparrot:"
    assert reaction_key_to_unicode(";0-wus-d2-abc") == ":custom:"
    assert reaction_key_to_unicode("somethingnew") == ":somethingnew:"
    assert unicode_to_reaction_key(":somethingnew:") == "somethingnew"
    # Words that happen to be hex are not code points.
    assert reaction_key_to_unicode("face_palm") == ":face_palm:"
    assert reaction_key_to_unicode("cafe_bad") == ":cafe_bad:"


def test_other_emoji_get_hex_keys_with_a_name() -> None:
    assert unicode_to_reaction_key("🚥") == "1f6a5_horizontaltrafficlight"
    assert unicode_to_reaction_key("😀") == "1f600_grinningface"
    assert unicode_to_reaction_key("☀️") == unicode_to_reaction_key("☀") == "2600_blacksunwithrays"
    assert unicode_to_reaction_key("🇺🇸") == "1f1fa_1f1f8_flagus"
    assert unicode_to_reaction_key("👍🏽") == "1f44d_1f3fd_thumbsupsign"
    assert unicode_to_reaction_key(" 🚥 ") == "1f6a5_horizontaltrafficlight"
    # Unassigned code points have no Unicode name.
    assert unicode_to_reaction_key("\U0001fbff\U0001fbfe").endswith("_emoji")


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError):
        reaction_key_to_unicode("  ")
    with pytest.raises(ValueError):
        unicode_to_reaction_key("")


# -- properties -------------------------------------------------------------------------
EMOJI_POINTS = st.one_of(
    st.integers(0x1F300, 0x1FAFF),
    st.integers(0x2600, 0x27BF),
    st.sampled_from([0x200D, 0xFE0F, 0x1F3FB, 0x1F3FD, 0x20E3, 0xA9, 0x2B50]),
)
EMOJI_TEXT = st.lists(EMOJI_POINTS, min_size=1, max_size=6).map(
    lambda points: "".join(chr(p) for p in points)
)


def _plain(text: str) -> bool:
    """No surrounding space, and not a ``:name:`` shortcode (those are names, not text;
    see the custom/unknown test)."""
    return text.strip() == text != "" and not (text.startswith(":") and text.endswith(":"))


ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
).filter(_plain)


@given(st.sampled_from(sorted(QUICK)))
def test_quick_keys_are_stable(key: str) -> None:
    assert unicode_to_reaction_key(reaction_key_to_unicode(key)) == key


@given(st.one_of(EMOJI_TEXT, ANY_TEXT))
def test_hex_keys_are_stable(emoji: str) -> None:
    key = unicode_to_reaction_key(emoji)
    assert unicode_to_reaction_key(reaction_key_to_unicode(key)) == key


@given(st.one_of(EMOJI_TEXT, ANY_TEXT))
def test_unicode_survives_a_round_trip(emoji: str) -> None:
    back = reaction_key_to_unicode(unicode_to_reaction_key(emoji))
    if back != emoji:  # only normalisation: the heart / quick forms or an added VS16
        assert back.replace("\ufe0f", "") == emoji.replace("\ufe0f", "") or back in QUICK.values()


@given(
    st.lists(st.integers(0x1F300, 0x1FAFF), min_size=1, max_size=4),
    st.from_regex(r"[a-z]{1,20}", fullmatch=True),
)
def test_any_hex_form_decodes_to_its_code_points(points: list[int], name: str) -> None:
    key = "_".join(f"{p:x}" for p in points) + "_" + name
    emoji = reaction_key_to_unicode(key)
    assert emoji == "".join(chr(p) for p in points)
    again = unicode_to_reaction_key(emoji)
    assert reaction_key_to_unicode(again) == emoji
