"""Which portal a Teams conversation is for a bridge user."""

from teams_bridge.portal.key import PortalKey

ADA = "8:orgid:ada"


def test_a_one_to_one_chat_is_each_users_own():
    assert PortalKey.for_user("19:a_b@unq.gbl.spaces", ADA, one_to_one=True) == PortalKey(
        "19:a_b@unq.gbl.spaces", ADA
    )
    assert PortalKey.for_user("19:g@thread.v2", ADA, one_to_one=False) == PortalKey(
        "19:g@thread.v2", ""
    )
    assert PortalKey("19:g@thread.v2") == ("19:g@thread.v2", "")


def test_candidates_look_for_a_chat_known_as_one_to_one_from_its_properties():
    # The id shows a 1:1: only the user's own portal.
    assert PortalKey.candidates("19:a_b@unq.gbl.spaces", ADA, one_to_one=True) == (
        PortalKey("19:a_b@unq.gbl.spaces", ADA),
    )
    # The id does not: the shared portal (made when missing), else the user's own.
    assert PortalKey.candidates("19:x@thread.v2", ADA, one_to_one=False) == (
        PortalKey("19:x@thread.v2"),
        PortalKey("19:x@thread.v2", ADA),
    )
    assert PortalKey.candidates("19:x@thread.v2", None, one_to_one=False) == (
        PortalKey("19:x@thread.v2"),
    )
