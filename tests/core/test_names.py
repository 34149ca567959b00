import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from teams_bridge.names import DISPLAYNAME_MAX_BYTES, ELLIPSIS, clean_name

BIDI = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]]
TROUBLE = [
    *BIDI,
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\t",
    "\n",
    "\u00ad",  # soft hyphen
    "\u200b",  # zero width space
    "\u200c",  # zero width non-joiner
    "\u200d",  # zero width joiner
    "\u2060",  # word joiner
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffe",
    "\U0010ffff",
    "\U000e0041",  # tag latin capital letter A
    "\u3164",  # hangul filler
    "\u2800",  # braille blank
    "\u0301",  # combining acute
    "\ud800",  # lone surrogates (JSON can carry them)
    "\udfff",
    " ",
    "\u00a0",
    "\u3000",
]
hostile_text = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(TROUBLE), st.sampled_from("ab €😀"))
)
INVISIBLE = set("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")


def _meaningful(char: str) -> bool:
    """A character a name may consist of (letters, digits, punctuation, symbols)."""
    cp = ord(char)
    noncharacter = 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE
    return unicodedata.category(char)[0] in "LNPS" and char not in INVISIBLE and not noncharacter


@pytest.mark.parametrize(
    "name",
    [
        "Ada Lovelace",
        "José Núñez-O'Brien",
        "山田 太郎",
        "محمد بن موسى",
        "می\u200cخواهم",  # Persian needs its non-joiner
        "👨\u200d👩\u200d👧 family",  # an emoji sequence needs its joiners
        "Zoë (she/her) 🏳️\u200d🌈",
        "Ελένη Παπαδοπούλου",
    ],
)
def test_ordinary_names_pass_unchanged(name):
    assert clean_name(name, DISPLAYNAME_MAX_BYTES) == name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Nul\x00l Byte", "Null Byte"),
        ("Eve \u202eexe.gnp", "Eve exe.gnp"),
        ("\u2066Mallory\u2069\x07", "Mallory"),
        ("Tab\tand\nnewline", "Tab and newline"),
        ("  lots   of\u3000space  ", "lots of space"),
        ("\u200dJoined\u200d \u200d\u200dname\u200d", "Joined name"),
        ("in\u200bvisible\ufeff\u00ad", "invisible"),
        ("tag\U000e0041\U000e007f", "tag"),
        ("\u3164\u3164", ""),
        ("\x00\u202e\u200b", ""),
        ("x" + "\u0301" * 50, "x" + "\u0301" * 8),
        ("", ""),
        (None, ""),
    ],
)
def test_troublemakers_are_removed(raw, clean):
    assert clean_name(raw, DISPLAYNAME_MAX_BYTES) == clean


def test_a_long_name_is_cut_on_a_character_boundary_with_an_ellipsis():
    name = clean_name("Ä" * 300, 248)  # two bytes each
    assert name == "Ä" * 122 + ELLIPSIS
    assert len(name.encode()) == 247
    assert clean_name("ab€cd", 5) == "ab" + ELLIPSIS
    assert clean_name("€€€", 4) == "€"  # no room for an ellipsis
    assert clean_name("€€€", 2) == ""  # no room for one character
    assert clean_name("abc", 0) == ""


def test_a_cut_leaves_no_space_or_joiner_before_the_ellipsis():
    assert clean_name("abc " + "d" * 20, 7) == "abc" + ELLIPSIS
    assert clean_name("ab\u200d" + "c" * 20, 8) == "ab" + ELLIPSIS


@settings(max_examples=500, deadline=None, derandomize=True)
@given(hostile_text, st.integers(min_value=0, max_value=300))
@example("x\x00" * 200 + "\u202e", 248)
@example("Mallory\x00\u202e " + "x" * 300, 248)
def test_clean_names_are_safe_and_fit(raw, limit):
    name = clean_name(raw, limit)
    encoded = name.encode("utf-8")  # valid UTF-8: no lone surrogates left
    assert len(encoded) <= limit
    for i, char in enumerate(name):
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cs", "Zl", "Zp"), repr(name)
        assert char not in BIDI and char not in INVISIBLE, repr(name)
        assert not _meaningful(char) or category != "Cf"
        if category == "Cf":  # only a joiner, and only inside a word
            assert char in "\u200c\u200d", repr(name)
            assert 0 < i < len(name) - 1 and " " not in (name[i - 1], name[i + 1])
            assert name[i + 1] not in "\u200c\u200d"
        if category.startswith("Z"):
            assert char == " "
    assert name == name.strip() and "  " not in name
    assert clean_name(name, limit) == name  # cleaning again changes nothing
    if limit >= 4 and any(_meaningful(c) for c in raw):
        assert name, repr(raw)
    if len(clean_name(raw, 10**6).encode()) <= limit:
        assert name == clean_name(raw, 10**6)  # only a name that does not fit is cut
