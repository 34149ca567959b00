"""The search's matching and excerpts (teams_bridge/search.py)."""

from teams_bridge.search import excerpt, matches, words_of


def test_every_word_must_be_there_in_any_case():
    words = words_of("Needle  ENGINE")
    assert words == ["needle", "engine"]
    assert matches("the needle is in the Engine room", words)
    assert not matches("the needle is here", words)
    assert not matches("anything", [])


def test_excerpts_show_the_match_in_bold_and_cut_long_text():
    assert excerpt("the Needle is here", ["needle"]) == "the **Needle** is here"
    long = "a " * 100 + "needle " + "b " * 100
    piece = excerpt(long, ["needle"])
    assert piece.startswith("…") and piece.endswith("…") and "**needle**" in piece
    assert len(piece.replace("**", "")) <= 82
    assert excerpt("x  y\n z", ["y"]) == "x **y** z"
