"""MRIs, conversation ids and links: classification, extraction, hostile input."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import teams_bridge.teams.chat as chat
from teams_bridge.teams.errors import InvalidId
from teams_bridge.teams.ids import (
    ConversationIdKind,
    MriKind,
    check_id,
    classify_conversation,
    escape_segment,
    id_from_link,
    is_call_log_id,
    is_channel_id,
    is_feed_id,
    is_one_to_one_id,
    is_participant_mri,
    members_from_conversation_id,
    mri_from_skype_id,
    one_to_one_peer,
    parse_link,
    parse_mri,
    thread_conversation_id,
)

A = "0f0f0f0f-1111-2222-3333-444444444444"
B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


@pytest.mark.parametrize(
    ("mri", "kind"),
    [
        (f"8:orgid:{A}", MriKind.ORGID),
        ("8:live:ada", MriKind.LIVE),
        ("8:live:.cid.0123456789abcdef", MriKind.LIVE),
        ("8:echo123", MriKind.SKYPE),
        ("8:teamsvisitor:abc", MriKind.VISITOR),
        ("8:acs:abc_def", MriKind.ACS),
        (f"28:{A}", MriKind.BOT),
        ("4:+15551234", MriKind.PSTN),
        ("2:sip@example.com", MriKind.SFB),
        ("1:old@msn.com", MriKind.MSN),
        ("48:notes", MriKind.FEED),
        ("19:abc@thread.v2", MriKind.THREAD),
        ("99:whatever", MriKind.UNKNOWN),
    ],
)
def test_classifies_mris(mri: str, kind: MriKind) -> None:
    assert parse_mri(mri).kind is kind


def test_orgid_mri_exposes_object_id() -> None:
    assert parse_mri(f"8:orgid:{A}").object_id == A
    assert parse_mri("8:live:ada").object_id is None
    assert parse_mri("8:live:ada").is_user
    assert not parse_mri("48:notes").is_user


@pytest.mark.parametrize(
    "bad", ["", "orgid:x", "8:", ":x", "x:y", "8:orgid:a/b", "8:a\x00b", "8:a\nb"]
)
def test_rejects_non_mris(bad: str) -> None:
    with pytest.raises(InvalidId):
        parse_mri(bad)


def test_skype_id_becomes_mri() -> None:
    assert mri_from_skype_id(f"orgid:{A}") == f"8:orgid:{A}"
    assert mri_from_skype_id("live:.cid.abc") == "8:live:.cid.abc"
    assert mri_from_skype_id("8:live:x") == "8:live:x"


@pytest.mark.parametrize(
    ("conv", "kind"),
    [
        (f"19:{A}_{B}@unq.gbl.spaces", ConversationIdKind.ONE_TO_ONE),
        ("19:uni01_abcdefgh@thread.v2", ConversationIdKind.ONE_TO_ONE_UNI),
        ("19:0123abcd@thread.v2", ConversationIdKind.GROUP),
        ("19:meeting_MjdhNjM4@thread.v2", ConversationIdKind.MEETING),
        ("19:0123abcd@thread.skype", ConversationIdKind.LEGACY_GROUP),
        ("19:0123abcd@thread.tacv2", ConversationIdKind.CHANNEL),
        ("19:0123abcd@thread.tacv2;messageid=1618133509362", ConversationIdKind.CHANNEL),
        ("8:live:ada", ConversationIdKind.DIRECT),
        ("48:notes", ConversationIdKind.FEED),
        ("19:weird@elsewhere", ConversationIdKind.UNKNOWN),
    ],
)
def test_classifies_conversation_ids(conv: str, kind: ConversationIdKind) -> None:
    assert classify_conversation(conv) is kind


def test_derives_members_of_one_to_one_ids() -> None:
    conv = f"19:{A}_{B}@unq.gbl.spaces"
    assert members_from_conversation_id(conv) == (f"8:orgid:{A}", f"8:orgid:{B}")
    assert one_to_one_peer(conv, f"8:orgid:{A}") == f"8:orgid:{B}"
    assert one_to_one_peer(conv, f"8:orgid:{B}") == f"8:orgid:{A}"
    assert one_to_one_peer(conv, None) is None
    assert one_to_one_peer("8:live:ada", "8:live:me") == "8:live:ada"
    assert members_from_conversation_id("19:abc@thread.v2") == ()
    assert one_to_one_peer("19:uni01_x@thread.v2", "8:live:me") is None


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            f"https://emea.ng.msg.teams.microsoft.com/v1/users/ME/contacts/8:orgid:{A}",
            (f"8:orgid:{A}", None),
        ),
        (
            f"https://notifications.skype.net/v1/users/ME/contacts/8%3Aorgid%3A{A}",
            (f"8:orgid:{A}", None),
        ),
        (f"8:orgid:{A}", (f"8:orgid:{A}", None)),
        (
            "http://127.0.0.1:8080/v1/users/ME/conversations/19:abc@thread.v2",
            ("19:abc@thread.v2", None),
        ),
        (
            "https://x/v1/users/ME/conversations/19:abc@thread.tacv2;messageid=1618133509362",
            ("19:abc@thread.tacv2", "1618133509362"),
        ),
        (
            "https://x/v1/users/ME/conversations/19%3Aabc%40thread.tacv2%3Bmessageid%3D16",
            ("19:abc@thread.tacv2", "16"),
        ),
        ("blah/19:abc@thread.v2", ("19:abc@thread.v2", None)),
        ("https://x/v1/users/ME/conversations/19:abc@thread.v2?q=1#f", ("19:abc@thread.v2", None)),
    ],
)
def test_extracts_ids_from_links_on_any_host(link: str, expected: tuple[str, str | None]) -> None:
    assert parse_link(link) == expected
    assert id_from_link(link) == expected[0]


@pytest.mark.parametrize(
    "link",
    [
        "",
        "https://x/v1/users/ME/contacts/",
        "https://x/v1/users/ME/contacts/8:orgid:a%2Fb",
        "https://x/v1/users/ME/contacts/8:orgid:a%00b",
        "https://x/v1/users/ME/contacts/8:orgid:a%0Ab",
        "https://x/v1/users/ME/contacts/8:orgid:%E2%80%AEevil",
        "https://x/v1/users/ME/contacts/8:orgid:%ff",
        "http://[::1/x",
    ],
)
def test_flags_hostile_links(link: str) -> None:
    with pytest.raises(InvalidId):
        parse_link(link)


def test_escapes_ids_as_one_path_segment() -> None:
    assert (
        escape_segment("19:abc@thread.tacv2;messageid=1")
        == "19%3Aabc%40thread.tacv2%3Bmessageid%3D1"
    )
    with pytest.raises(InvalidId):
        escape_segment("19:a/../b")


def test_builds_channel_thread_ids() -> None:
    assert thread_conversation_id("19:abc@thread.tacv2", "17") == "19:abc@thread.tacv2;messageid=17"
    # a thread id given as the channel names the same channel
    assert (
        thread_conversation_id("19:abc@thread.tacv2;messageid=1", "2")
        == "19:abc@thread.tacv2;messageid=2"
    )
    with pytest.raises(InvalidId):
        thread_conversation_id("19:abc@thread.tacv2", "1/../2")


def test_rejects_overlong_ids() -> None:
    with pytest.raises(InvalidId):
        check_id("8:" + "a" * 2000)


safe_ids = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"), blacklist_characters="/\\?#"
    ),
    min_size=1,
    max_size=80,
)


@given(safe_ids)
def test_escaped_ids_round_trip_through_links(ident: str) -> None:
    link = f"https://host/v1/users/ME/conversations/{escape_segment(ident)}"
    base, root = parse_link(link)
    if ";messageid=" in ident.lower():
        assert ident.lower().startswith(base.lower())
    else:
        assert (base, root) == (ident, None)


@given(st.text(max_size=120))
def test_link_parsing_raises_only_invalid_id(text: str) -> None:
    try:
        ident, _root = parse_link(text)
    except InvalidId:
        return
    assert check_id(ident) == ident


@given(st.text(max_size=80))
def test_classification_never_crashes_on_valid_ids(text: str) -> None:
    try:
        check_id(text)
    except InvalidId:
        return
    assert isinstance(classify_conversation(text), ConversationIdKind)
    assert quote(text, safe="") == escape_segment(text)


@pytest.mark.parametrize(
    ("conv_id", "one_to_one", "channel", "feed"),
    [
        (f"19:{A}_{B}@unq.gbl.spaces", True, False, False),
        ("19:uni01_abcdef@thread.v2", True, False, False),
        ("8:live:ada", True, False, False),
        ("19:abc@thread.v2", False, False, False),
        ("19:meeting_abc@thread.v2", False, False, False),
        ("19:abc@thread.tacv2", False, True, False),
        ("19:abc@thread.tacv2;messageid=1700000000000", False, True, False),
        ("48:calllogs", False, False, True),
        ("48:notes", False, False, True),
        ("", False, False, False),
        ("19:a/b@thread.v2", False, False, False),  # hostile: nothing at all
    ],
)
def test_what_a_conversation_id_tells(conv_id, one_to_one, channel, feed):
    assert is_one_to_one_id(conv_id) is one_to_one
    assert is_channel_id(conv_id) is channel
    assert is_feed_id(conv_id) is feed


def test_call_log_and_participant_ids():
    assert is_call_log_id("48:calllogs") and is_call_log_id("48:CallLogs")
    assert not is_call_log_id("48:notes") and not is_call_log_id("19:abc@thread.v2")
    for mri in (f"8:orgid:{A}", "8:live:ada", f"28:{A}", "4:+15550100"):
        assert is_participant_mri(mri), mri
    # Notices "from the conversation" carry its id, or a feed's, as their sender.
    for not_someone in ("19:abc@thread.v2", "48:calllogs", "", None):
        assert not is_participant_mri(not_someone), not_someone


def test_client_message_ids_made_at_once_never_meet(monkeypatch):
    # A transaction's messages get their ids in the same millisecond: with only the clock
    # and three random digits, 40 of them met about half the time.
    monkeypatch.setattr(chat, "now_ms", lambda: 1_764_000_000_000)
    monkeypatch.setattr(chat.random, "randrange", lambda n: 7)
    ids = [chat.new_client_message_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(i.isdigit() and len(i) == 16 for i in ids)
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
