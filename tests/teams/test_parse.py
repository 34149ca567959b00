"""Raw Teams JSON → models, for every wire variant the protocol notes list."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from teams_bridge.teams.errors import ParseError
from teams_bridge.teams.models import ConversationKind, ResourceType
from teams_bridge.teams.parse import (
    as_int,
    parse_conversation,
    parse_event,
    parse_message,
    parse_profile,
    parse_thread,
    parse_time,
)

A = "0f0f0f0f-1111-2222-3333-444444444444"
B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
HOST = "https://emea.ng.msg.teams.microsoft.com/v1/users/ME"


def wire_message(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": "1618133509362",
        "sequenceId": 2,
        "clientmessageid": "3905287147909359600",
        "version": "1618133509362",
        "type": "Message",
        "messagetype": "RichText/Html",
        "contenttype": "text",
        "content": "<p>Hello</p>",
        "from": f"{HOST}/contacts/8:orgid:{A}",
        "imdisplayname": "Ada Lovelace",
        "conversationid": "19:abc@thread.v2",
        "conversationLink": f"{HOST}/conversations/19:abc@thread.v2",
        "composetime": "2021-04-11T09:31:49.3620000Z",
        "originalarrivaltime": "2021-04-11T09:31:49.362Z",
        "properties": {"mentions": "[]", "emotions": []},
        "unknownField": {"ignored": True},
    }
    msg.update(overrides)
    return msg


def test_parses_a_message_with_every_field() -> None:
    msg = parse_message(wire_message())
    assert msg.id == "1618133509362"
    assert msg.conversation_id == "19:abc@thread.v2"
    assert msg.message_type == "RichText/Html"
    assert msg.content == "<p>Hello</p>"
    assert msg.sender_mri == f"8:orgid:{A}"
    assert msg.sender_name == "Ada Lovelace"
    assert msg.client_message_id == "3905287147909359600"
    assert msg.version == 1618133509362
    expected = datetime(2021, 4, 11, 9, 31, 49, 362000, tzinfo=UTC)
    assert msg.compose_time == expected
    assert msg.arrival_time == expected
    assert msg.edit_time is None and msg.delete_time is None
    assert msg.thread_root_id is None
    assert msg.json_property("mentions") == []


def test_message_variants_are_tolerated() -> None:
    msg = parse_message(
        {
            "id": 1618133509362,
            "messageType": "Text",
            "content": None,
            "from": f"8:orgid:{A}",
            "imDisplayName": "Ada",
            "clientMessageId": 42,
            "version": 7,
            "composeTime": "2021-04-11T09:31:49.362Z",
            "conversationLink": "blah/19:abc@thread.v2",
            "properties": json.dumps({"edittime": "1618133600000", "deletetime": 1618133700000}),
        }
    )
    assert msg.id == "1618133509362"
    assert msg.message_type == "Text"
    assert msg.content == ""
    assert msg.sender_mri == f"8:orgid:{A}"
    assert msg.sender_name == "Ada"
    assert msg.client_message_id == "42"
    assert msg.conversation_id == "19:abc@thread.v2"
    assert msg.edit_time == datetime(2021, 4, 11, 9, 33, 20, tzinfo=UTC)
    assert msg.is_edited and msg.is_deleted


def test_channel_reply_carries_its_root() -> None:
    msg = parse_message(
        wire_message(
            conversationid="19:chan@thread.tacv2",
            conversationLink=f"{HOST}/conversations/19:chan@thread.tacv2;messageid=1618133500000",
        )
    )
    assert msg.conversation_id == "19:chan@thread.tacv2"
    assert msg.thread_root_id == "1618133500000"


def test_channel_root_post_names_itself_and_is_no_reply() -> None:
    link = f"{HOST}/conversations/19:chan@thread.tacv2;messageid=1618133509362"
    msg = parse_message(wire_message(conversationid="19:chan@thread.tacv2", conversationLink=link))
    assert msg.thread_root_id == msg.id == "1618133509362"
    assert msg.reply_root_id is None


@pytest.mark.parametrize(
    "fields",
    [
        {"rootMessageId": "1618133500000"},
        {"parentMessageId": 1618133500000},
        {"properties": {"parentMessageId": "1618133500000"}},
    ],
)
def test_channel_reply_root_from_id_fields(fields: dict[str, Any]) -> None:
    raw = wire_message(
        conversationid="19:chan@thread.tacv2",
        conversationLink=f"{HOST}/conversations/19:chan@thread.tacv2",
        **fields,
    )
    msg = parse_message(raw)
    assert msg.conversation_id == "19:chan@thread.tacv2"
    assert msg.reply_root_id == "1618133500000"


def test_root_fields_mean_nothing_outside_channels() -> None:
    msg = parse_message(wire_message(properties={"parentMessageId": "1618133500000"}))
    assert msg.thread_root_id is None and msg.reply_root_id is None


def test_message_without_conversation_uses_the_hint() -> None:
    raw = wire_message()
    del raw["conversationid"], raw["conversationLink"]
    assert parse_message(raw, conversation_id="19:x@thread.v2").conversation_id == "19:x@thread.v2"
    with pytest.raises(ParseError):
        parse_message(raw)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "text",
        {"content": "no id"},
        wire_message(id="1/2"),
        wire_message(**{"from": f"{HOST}/contacts/8:orgid:a%0Ab"}),
        wire_message(conversationid="19:a\x00@thread.v2"),
        wire_message(properties="{not json"),
    ],
)
def test_malformed_messages_raise_parse_error(raw: Any) -> None:
    with pytest.raises(ParseError):
        parse_message(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-04-11T09:31:49.3620000Z", datetime(2021, 4, 11, 9, 31, 49, 362000, tzinfo=UTC)),
        ("2021-04-11T09:31:49.362Z", datetime(2021, 4, 11, 9, 31, 49, 362000, tzinfo=UTC)),
        ("2021-04-11T09:31:49Z", datetime(2021, 4, 11, 9, 31, 49, tzinfo=UTC)),
        ("2021-04-11T11:31:49.1+02:00", datetime(2021, 4, 11, 9, 31, 49, 100000, tzinfo=UTC)),
        (1618133509362, datetime(2021, 4, 11, 9, 31, 49, 362000, tzinfo=UTC)),
        ("1618133509362", datetime(2021, 4, 11, 9, 31, 49, 362000, tzinfo=UTC)),
        (1618133509, datetime(2021, 4, 11, 9, 31, 49, tzinfo=UTC)),
        ("0", None),
        ("", None),
        (None, None),
        ("yesterday", None),
        (True, None),
    ],
)
def test_parses_timestamps(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_numbers_may_be_strings() -> None:
    assert as_int("42") == 42
    assert as_int(42) == 42
    assert as_int("4.0") == 4
    assert as_int(None) is None
    assert as_int(True) is None
    assert as_int("x") is None


def wire_conversation(**overrides: Any) -> dict[str, Any]:
    conv: dict[str, Any] = {
        "id": "19:abc@thread.v2",
        "type": "Conversation",
        "version": 1715842456893,
        "properties": {"consumptionhorizon": "1;2;3"},
        "threadProperties": {
            "threadType": "chat",
            "productThreadType": "Chat",
            "topic": "Team chat",
            "membercount": "3",
            "members": json.dumps([f"8:orgid:{A}", f"8:orgid:{B}"]),
            "uniquerosterthread": "false",
            "version": "1715842456893",
        },
        "lastMessage": wire_message(),
    }
    conv.update(overrides)
    return conv


def test_parses_a_group_conversation() -> None:
    conv = parse_conversation(wire_conversation())
    assert conv.id == "19:abc@thread.v2"
    assert conv.kind is ConversationKind.GROUP
    assert conv.topic == "Team chat"
    assert conv.members == (f"8:orgid:{A}", f"8:orgid:{B}")
    assert conv.last_message is not None and conv.last_message.id == "1618133509362"
    assert conv.version == 1715842456893


def test_one_to_one_without_members_derives_them_from_the_id() -> None:
    conv = parse_conversation(
        {
            "id": f"19:{A}_{B}@unq.gbl.spaces",
            "threadProperties": {"productThreadType": "OneToOneChat"},
        }
    )
    assert conv.kind is ConversationKind.ONE_TO_ONE
    assert conv.members == (f"8:orgid:{A}", f"8:orgid:{B}")
    assert conv.last_message is None


def test_legacy_one_to_one_with_null_thread_properties() -> None:
    conv = parse_conversation({"id": "8:live:ada", "threadProperties": None, "lastMessage": {}})
    assert conv.kind is ConversationKind.ONE_TO_ONE
    assert conv.members == ("8:live:ada",)
    assert conv.topic is None


@pytest.mark.parametrize(
    ("conv_id", "props", "kind"),
    [
        ("19:x@thread.v2", {"uniquerosterthread": "true"}, ConversationKind.ONE_TO_ONE),
        ("19:uni01_x@thread.v2", {}, ConversationKind.ONE_TO_ONE),
        ("19:meeting_x@thread.v2", {"threadType": "meeting"}, ConversationKind.MEETING),
        ("19:x@thread.v2", {"productThreadType": "Meeting"}, ConversationKind.MEETING),
        ("19:x@thread.tacv2", {"threadType": "topic"}, ConversationKind.CHANNEL),
        ("19:x@thread.skype", {}, ConversationKind.GROUP),
        ("48:notifications", {}, ConversationKind.OTHER),
        ("19:x@thread.v2", {"threadType": "streamofnotifications"}, ConversationKind.OTHER),
    ],
)
def test_conversation_kinds(conv_id: str, props: dict[str, Any], kind: ConversationKind) -> None:
    assert parse_conversation({"id": conv_id, "threadProperties": props}).kind is kind


CHANNEL_PROPS = {
    "threadType": "topic",
    "productThreadType": "TeamsStandardChannel",
    "topic": "What we talk about here",
    "topicThreadTopic": "Design",
    "spaceThreadTopic": "Contoso",
    "spaceId": "19:team@thread.tacv2",
}
GENERAL_PROPS = {"threadType": "space", "productThreadType": "TeamsTeam", "spaceThreadTopic": "C"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"id": "19:chan@thread.tacv2", "threadProperties": CHANNEL_PROPS},
            ("Design", "19:team@thread.tacv2", "Contoso"),
        ),
        (  # a team's own thread is its General channel
            {"id": "19:team@thread.tacv2", "threadProperties": GENERAL_PROPS},
            ("General", "19:team@thread.tacv2", "C"),
        ),
        (  # the same from the thread endpoint
            {"id": "19:team@thread.tacv2", "properties": GENERAL_PROPS},
            ("General", "19:team@thread.tacv2", "C"),
        ),
    ],
)
def test_channels_are_named_after_channel_and_team(
    raw: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    parsed = parse_thread(raw) if "properties" in raw else parse_conversation(raw)
    assert parsed.kind is ConversationKind.CHANNEL
    assert (parsed.topic, parsed.team_id, parsed.team_name) == expected


def test_members_may_be_objects_and_bad_ones_are_skipped() -> None:
    conv = parse_conversation(
        wire_conversation(
            threadProperties={
                "members": [{"id": f"8:orgid:{A}"}, {"id": "8:a/b"}, 5, f"8:orgid:{A}"]
            }
        )
    )
    assert conv.members == (f"8:orgid:{A}",)


def test_unparsable_last_message_is_dropped_not_fatal() -> None:
    conv = parse_conversation(wire_conversation(lastMessage={"id": "1/2"}))
    assert conv.last_message is None


def test_conversation_needs_a_valid_id() -> None:
    with pytest.raises(ParseError):
        parse_conversation({"threadProperties": {}})
    with pytest.raises(ParseError):
        parse_conversation({"id": "19:a\nb@thread.v2"})
    with pytest.raises(ParseError):
        parse_conversation({"id": "19:a@thread.v2", "threadProperties": "{broken"})


def test_parses_a_thread_with_roster() -> None:
    thread = parse_thread(
        {
            "id": "19:abc@thread.v2",
            "type": "Thread",
            "version": 1451606400000,
            "properties": {
                "topic": "Team chat",
                "creator": f"8:orgid:{A}",
                "threadType": "chat",
                "picture": "URL@https://api.asm.skype.com/v1/objects/0-x/views/avatar_fullsize",
            },
            "members": [
                {"id": f"8:orgid:{A}", "role": "Admin", "friendlyName": "Ada"},
                {"id": f"8:orgid:{B}", "role": "User"},
                "8:live:bob",
            ],
        }
    )
    assert thread.kind is ConversationKind.GROUP
    assert thread.topic == "Team chat"
    assert thread.creator == f"8:orgid:{A}"
    assert thread.picture == "https://api.asm.skype.com/v1/objects/0-x/views/avatar_fullsize"
    assert [(m.mri, m.role, m.friendly_name) for m in thread.members] == [
        (f"8:orgid:{A}", "Admin", "Ada"),
        (f"8:orgid:{B}", "User", None),
        ("8:live:bob", None, None),
    ]


def test_thread_members_as_json_string_and_one_to_one_fallback() -> None:
    thread = parse_thread({"id": "19:x@thread.v2", "members": json.dumps([{"id": "8:live:a"}])})
    assert [m.mri for m in thread.members] == ["8:live:a"]
    one = parse_thread({"id": f"19:{A}_{B}@unq.gbl.spaces", "properties": None})
    assert one.kind is ConversationKind.ONE_TO_ONE
    assert [m.mri for m in one.members] == [f"8:orgid:{A}", f"8:orgid:{B}"]


def test_parses_new_message_events() -> None:
    event = parse_event(
        {
            "id": "1719",
            "type": "EventMessage",
            "resourceType": "NewMessage",
            "time": "2026-05-04T07:04:11.3Z",
            "resourceLink": "https://notifications.skype.net/v1/users/ME/conversations/19:abc@thread.v2/messages/1",
            "resource": wire_message(
                **{
                    "from": f"https://notifications.skype.net/v1/users/ME/contacts/8:orgid:{A}",
                    "conversationLink": "https://notifications.skype.net/v1/users/ME/conversations/19:abc@thread.v2",
                }
            ),
        }
    )
    assert event.id == 1719
    assert event.resource_type == ResourceType.NEW_MESSAGE
    assert event.time == datetime(2026, 5, 4, 7, 4, 11, 300000, tzinfo=UTC)
    assert event.message is not None
    assert event.message.sender_mri == f"8:orgid:{A}"
    assert event.message.conversation_id == "19:abc@thread.v2"
    assert event.conversation is None and event.thread is None


def test_event_conversation_falls_back_to_the_resource_link() -> None:
    raw = wire_message()
    del raw["conversationid"], raw["conversationLink"]
    event = parse_event(
        {
            "id": 1,
            "resourceType": "MessageUpdate",
            "resourceLink": f"{HOST}/conversations/19%3Aq%40thread.v2/messages/1",
            "resource": json.dumps(raw),
        }
    )
    assert event.message is not None and event.message.conversation_id == "19:q@thread.v2"


def test_parses_conversation_and_thread_updates_and_keeps_unknown_types() -> None:
    conv = parse_event(
        {"id": 2, "resourceType": "ConversationUpdate", "resource": wire_conversation()}
    )
    assert conv.conversation is not None and conv.conversation.topic == "Team chat"
    thread = parse_event(
        {"id": 3, "resourceType": "ThreadUpdate", "resource": {"id": "19:t@thread.v2"}}
    )
    assert thread.thread is not None and thread.thread.id == "19:t@thread.v2"
    presence = parse_event(
        {"id": 4, "resourceType": "UserPresence", "resource": {"status": "Online"}}
    )
    assert presence.resource is None and presence.resource_type == "UserPresence"


def test_malformed_events_raise_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_event({"id": 1})
    with pytest.raises(ParseError):
        parse_event({"id": 1, "resourceType": "NewMessage", "resource": "{bad"})
    with pytest.raises(ParseError):
        parse_event({"id": 1, "resourceType": "NewMessage", "resource": {"content": "x"}})
    with pytest.raises(ParseError):
        parse_event("nope")


def test_parses_profiles() -> None:
    profile = parse_profile(
        {
            "mri": f"8:orgid:{A}",
            "objectId": A,
            "displayName": "Ada Lovelace",
            "givenName": "Ada",
            "surname": "Lovelace",
            "email": "ada@example.com",
            "userPrincipalName": "ada@example.com",
            "jobTitle": "Engineer",
            "type": "ADUser",
            "isShortProfile": True,
        }
    )
    assert profile.display_name == "Ada Lovelace"
    assert profile.email == "ada@example.com"
    assert parse_profile({"objectId": B}).mri == f"8:orgid:{B}"
    with pytest.raises(ParseError):
        parse_profile({"displayName": "nobody"})


def _call_log(thread_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"callState": "accepted", "originator": f"8:orgid:{A}"}
    if thread_id is not None:
        entry["threadId"] = thread_id
    return wire_message(
        conversationid="48:calllogs",
        conversationLink=f"{HOST}/conversations/48:calllogs",
        messagetype="Text",
        properties={"call-log": json.dumps(entry)},
    )


def test_events_say_which_chat_they_belong_to() -> None:
    def ref(resource_type: str, resource: Any) -> tuple[str, bool, bool] | None:
        event = parse_event({"id": 1, "resourceType": resource_type, "resource": resource})
        found = event.conversation_ref
        return None if found is None else (found.id, found.one_to_one, found.opens_chat)

    dm = f"19:{A}_{B}@unq.gbl.spaces"
    chan = "19:design@thread.tacv2"
    # A message is the first sign of its chat; the id tells whether it is a 1:1.
    assert ref("NewMessage", wire_message()) == ("19:abc@thread.v2", False, True)
    assert ref(
        "NewMessage", wire_message(conversationid=dm, conversationLink=f"{HOST}/conversations/{dm}")
    ) == (dm, True, True)
    # A reply in a channel thread belongs to the channel.
    reply = wire_message(conversationid=f"{chan};messageid=1", conversationLink=None)
    assert ref("MessageUpdate", reply) == (chan, False, True)
    # A call-log entry is about the chat the call was in, which it does not open.
    assert ref("NewMessage", _call_log(dm)) == (dm, True, False)
    assert ref("NewMessage", _call_log(None)) is None
    # Other feeds are no chat's.
    notes = wire_message(conversationid="48:notes", conversationLink=None)
    assert ref("NewMessage", notes) is None
    # A chat's metadata: its properties may tell a 1:1 that its id does not.
    assert ref("ThreadUpdate", {"id": "19:t@thread.v2"}) == ("19:t@thread.v2", False, False)
    one_to_one = {"id": "19:t@thread.v2", "properties": {"uniquerosterthread": "true"}}
    assert ref("ThreadUpdate", one_to_one) == ("19:t@thread.v2", True, False)
    assert ref("ConversationUpdate", wire_conversation()) == ("19:abc@thread.v2", False, False)
    assert ref("UserPresence", {"status": "Online"}) is None
