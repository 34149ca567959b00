"""The browser sign-in's pure parts: the PKCE challenge and reading the pasted address."""

import pytest

from teams_bridge.teams import AccountKind, AuthCodeFlow, PastedAddressError, parse_redirect
from teams_bridge.teams.auth import pkce_challenge

FLOW = AuthCodeFlow(
    AccountKind.WORK, "organizations", "client", "https://r.example/x", "v" * 64, "S1", "u"
)


def test_the_challenge_is_rfc_7636_s256():
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_code_comes_from_the_query_or_the_fragment():
    assert parse_redirect("https://r.example/x?code=C1&state=S1", FLOW) == "C1"
    assert parse_redirect(" <https://r.example/x#code=C2&state=S1&session_state=z> ", FLOW) == "C2"


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("https://r.example/x?code=C1&state=S2", "another sign-in"),
        ("https://r.example/x?code=C1", "another sign-in"),
        ("https://r.example/x?state=S1", "no code"),
        (
            "https://r.example/x?error=access_denied&error_description=AADSTS65004%3A+no&state=S1",
            "AADSTS65004",
        ),
        ("code=C1&state=S1", "not a web address"),
    ],
)
def test_a_wrong_address_says_what_is_wrong(pasted, says):
    with pytest.raises(PastedAddressError, match=says):
        parse_redirect(pasted, FLOW)
