from hypothesis import given, settings
from hypothesis import strategies as st

from teams_bridge.mxid import escape_mri, unescape_mri

LOCALPART_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._=-/")


def test_known_mris_escape_readably():
    assert escape_mri("8:orgid:2f1c0e2a-1111-2222-3333-444455556666") == (
        "8=3aorgid=3a2f1c0e2a-1111-2222-3333-444455556666"
    )
    assert escape_mri("8:live:.cid.0123abcd") == "8=3alive=3a.cid.0123abcd"
    assert escape_mri("8:live:Ada_Lovelace") == "8=3alive=3a_ada___lovelace"


def test_distinct_mris_do_not_collide():
    assert escape_mri("8:live:a_b") != escape_mri("8:live:a_B")
    assert escape_mri("8:live:ab") != escape_mri("8:live:aB")


def test_foreign_localparts_are_rejected():
    assert unescape_mri("UPPER") is None
    assert unescape_mri("=zz") is None
    assert unescape_mri("a:b") is None
    # Not a canonical encoding of anything escape_mri would produce.
    assert unescape_mri("=61") is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=80))
def test_round_trip_and_only_legal_characters(mri: str):
    localpart = escape_mri(mri)
    assert set(localpart) <= LOCALPART_CHARS
    assert unescape_mri(localpart) == mri


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=40))
def test_unescape_never_raises(text: str):
    result = unescape_mri(text)
    if result is not None:
        assert escape_mri(result) == text
