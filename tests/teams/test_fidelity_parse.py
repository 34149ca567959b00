"""Reactions, mentions, quotes, edits, deletes, read positions, thread activity and calls:
every wire variant the protocol notes list, parsed without raising."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teams_bridge.teams import (
    ActivityMember,
    CallEventKind,
    Message,
    Reaction,
    ThreadActivityKind,
    parse_call_event,
    parse_consumption_horizon,
    parse_thread_activity,
)
from teams_bridge.teams.parse import parse_conversation, parse_event, parse_message
from teams_bridge.teams.xmlsafe import parse_xml

A = "8:orgid:0f0f0f0f-1111-2222-3333-444444444444"
B = "8:orgid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
C = "8:orgid:cccccccc-0000-0000-0000-000000000000"
CONV = "19:abc@thread.v2"
HOST = "https://emea.ng.msg.teams.microsoft.com/v1/users/ME"


def wire(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": "1700000000100",
        "clientmessageid": "123",
        "version": "1700000000100",
        "messagetype": "RichText/Html",
        "content": "<p>hi</p>",
        "from": f"{HOST}/contacts/{A}",
        "imdisplayname": "Ada",
        "conversationLink": f"{HOST}/conversations/{CONV}",
        "originalarrivaltime": "2023-11-14T22:13:20.100Z",
        "properties": {},
    }
    msg.update(overrides)
    return msg


def message(**overrides: Any) -> Message:
    return parse_message(wire(**overrides))


def activity(messagetype: str, content: str | dict[str, Any], **overrides: Any) -> Message:
    text = content if isinstance(content, str) else json.dumps(content)
    return message(
        messagetype=messagetype, content=text, **{"from": f"{HOST}/contacts/{CONV}"}, **overrides
    )


# -- reactions --------------------------------------------------------------------------
def test_emotions_collapse_history_and_drop_empty_keys() -> None:
    emotions = [
        {
            "key": "like",
            "users": [
                {"mri": A, "time": 1700000000200, "value": "1700000000199"},
                {"mri": B, "time": "1700000000300", "value": "1700000000299"},
                {"mri": A, "time": 1700000000500, "value": "1700000000499"},  # history
                {"mri": "", "time": 1},
                {"time": 2},
                "not an object",
            ],
        },
        {"key": "heart", "users": []},
        {"key": "", "users": [{"mri": C, "time": 3}]},
        {"key": "laugh", "users": [{"mri": f"{HOST}/contacts/{C}", "value": "1700000000600"}]},
    ]
    msg = message(properties={"emotions": emotions})
    assert msg.emotions == (
        Reaction("like", A, 1700000000500),
        Reaction("like", B, 1700000000300),
        Reaction("laugh", C, 1700000000600),
    )


def test_emotions_as_a_json_string_or_missing_or_garbage() -> None:
    raw = json.dumps([{"key": "sad", "users": [{"mri": B, "time": 5}]}])
    assert message(properties={"emotions": raw}).emotions == (Reaction("sad", B, 5),)
    assert message(properties={}).emotions == ()
    assert message(properties={"emotions": "{not json"}).emotions == ()
    assert message(properties={"emotions": [{"key": "like", "users": "x"}]}).emotions == ()
    assert message(properties={"emotions": {"like": [{"mri": A}]}}).emotions == (
        Reaction("like", A, None),
    )


def test_older_history_entry_after_a_newer_one_does_not_win() -> None:
    users = [{"mri": A, "time": 9}, {"mri": A, "time": 4}]
    assert message(properties={"emotions": [{"key": "like", "users": users}]}).emotions == (
        Reaction("like", A, 9),
    )


# -- mentions and quotes ----------------------------------------------------------------
def test_split_mention_spans_name_the_same_user() -> None:
    mentions = [
        {"@type": "http://schema.skype.com/Mention", "itemid": 0, "mri": A, "displayName": "Ada"},
        {"itemid": "1", "mri": A, "mentionType": "person", "displayName": "Lovelace"},
        {"itemid": 2, "mri": B},
        {"itemid": 3, "mri": "8:orgid:bad/path"},
        {"itemid": 4},
        "junk",
    ]
    msg = message(properties={"mentions": json.dumps(mentions)})
    assert [(m.item_id, m.mri, m.display_name) for m in msg.mentions] == [
        ("0", A, "Ada"),
        ("1", A, "Lovelace"),
        ("2", B, None),
    ]
    assert msg.mentions[1].mention_type == "person"
    assert message(properties={"mentions": "[]"}).mentions == ()
    assert message(properties={"mentions": "oops"}).mentions == ()


def test_conversation_mentions_are_told_apart_from_people() -> None:
    mentions = [
        {"itemid": 0, "mri": A, "mentionType": "person", "displayName": "Ada"},
        {"itemid": 1, "mri": "19:c@thread.tacv2", "mentionType": "channel", "displayName": "Dev"},
        {"itemid": 2, "mri": "19:g@thread.v2", "mentionType": "chat", "displayName": "Everyone"},
        {"itemid": 3, "mri": "19:t@thread.tacv2", "displayName": "Contoso"},
        {"itemid": 4, "mri": "tHab2TLzpa", "mentionType": "tag", "displayName": "Ops"},
    ]
    msg = message(properties={"mentions": json.dumps(mentions)})
    assert [(m.item_id, m.is_conversation) for m in msg.mentions] == [
        ("0", False),
        ("1", True),
        ("2", True),
        ("3", True),
    ]  # a tag's id is no MRI: it is not listed


def test_quoted_message_ids() -> None:
    quoted = [
        {"messageId": "1700000000001", "sender": A, "time": 1700000000001},
        {"messageId": 1700000000002},
        {"messageId": "1700000000001"},
        {"sender": A},
    ]
    msg = message(properties={"qtdMsgs": json.dumps(quoted)})
    assert msg.quoted_message_ids == ("1700000000001", "1700000000002")
    assert message(properties={"qtdMsgs": "nope"}).quoted_message_ids == ()


# -- edits, deletes, names --------------------------------------------------------------
def test_edited_by_edittime_or_skypeeditedid() -> None:
    assert not message().is_edited
    assert message(properties={"edittime": "1700000000900"}).is_edited
    assert message(properties={"edittime": 1700000000900}).is_edited
    by_id = message(skypeeditedid="123")
    assert by_id.is_edited and by_id.edited_id == "123" and by_id.edit_time is None


def test_deleted_variants() -> None:
    assert not message().is_deleted
    assert message(content="", properties={"deletetime": 1700000000900}).is_deleted
    assert message(content="", properties={"deletetime": "1700000000900"}).is_deleted
    assert message(content="", properties={"deletionTime": "1700000000900"}).is_deleted
    assert message(properties={"systemdelete": "true"}).is_deleted
    # Empty content only means "deleted" when a MessageUpdate re-sent the message.
    assert not message(content="").is_deleted
    emptied = parse_message(wire(content=""), from_update=True)
    assert emptied.is_deleted
    typing = parse_message(wire(content="", messagetype="Control/Typing"), from_update=True)
    assert not typing.is_deleted


def test_message_update_events_mark_the_message() -> None:
    event = {
        "id": 7,
        "resourceType": "MessageUpdate",
        "resourceLink": f"{HOST}/conversations/{CONV}/messages/1700000000100",
        "resource": wire(content=""),
    }
    update = parse_event(event).message
    assert update is not None and update.from_update and update.is_deleted
    event["resourceType"] = "NewMessage"
    new = parse_event(event).message
    assert new is not None and not new.from_update and not new.is_deleted


def test_display_name_spellings() -> None:
    camel = wire(imDisplayName="Ada Camel")
    del camel["imdisplayname"]
    assert parse_message(camel).sender_name == "Ada Camel"
    assert message().sender_name == "Ada"


# -- consumption horizons -------------------------------------------------------------
def test_consumption_horizon_variants() -> None:
    h = parse_consumption_horizon("1700000000100;1700000000555;1700000000100", A)
    assert h is not None
    assert (h.mri, h.message_id, h.client_message_id) == (A, "1700000000100", "1700000000100")
    assert h.read_time == datetime.fromtimestamp(1700000000.555, UTC)
    never = parse_consumption_horizon("0;0;0")
    assert never is not None and never.message_id is None and never.read_time is None
    client_first = parse_consumption_horizon("3905287147909359600;1700000000555;1700000000100")
    assert client_first is not None and client_first.message_id == "1700000000100"
    for bad in ("", "abc", "1;x;2", None, 5, "1700000000100"):
        assert parse_consumption_horizon(bad) is None


def test_conversation_carries_the_own_read_position() -> None:
    conv = parse_conversation(
        {
            "id": CONV,
            "properties": {"consumptionhorizon": "1700000000100;1700000000555;42"},
            "threadProperties": {"threadType": "chat"},
        }
    )
    assert conv.consumption_horizon is not None
    assert conv.consumption_horizon.message_id == "1700000000100"
    assert parse_conversation({"id": CONV}).consumption_horizon is None


# -- thread activity: XML ---------------------------------------------------------------
ADD_XML = (
    "<addmember><eventtime>1600132530587</eventtime><initiator>8:orgid:A</initiator>"
    "<detailedinitiatorinfo><friendlyName>Alice</friendlyName></detailedinitiatorinfo>"
    "<rosterVersion>1600132530506</rosterVersion>"
    "<target>8:orgid:B</target><detailedtargetinfo><id>8:orgid:B</id>"
    "<friendlyName>Bob</friendlyName></detailedtargetinfo>"
    "<target>8:orgid:C</target><detailedtargetinfo><id>8:orgid:C</id></detailedtargetinfo>"
    "</addmember>"
)


def test_add_member_with_several_targets() -> None:
    act = parse_thread_activity(activity("ThreadActivity/AddMember", ADD_XML))
    assert act is not None
    assert act.kind is ThreadActivityKind.ADD_MEMBER
    assert act.conversation_id == CONV and act.message_id == "1700000000100"
    assert act.initiator == "8:orgid:A" and act.initiator_name == "Alice"
    assert act.targets == (ActivityMember("8:orgid:B", "Bob"), ActivityMember("8:orgid:C"))
    assert act.roster_version == 1600132530506
    assert act.time == datetime.fromtimestamp(1600132530.587, UTC)


def test_detailed_info_without_an_id_describes_the_previous_target() -> None:
    xml = (
        "<AddMember><target>8:orgid:B</target><detailedtargetinfo>"
        "<friendlyName>Bob &amp; Co&nbsp;Ltd</friendlyName></detailedtargetinfo></AddMember>"
    )
    act = parse_thread_activity(activity("ThreadActivity/AddMember", xml))
    assert act is not None and act.targets == (ActivityMember("8:orgid:B", "Bob & Co\xa0Ltd"),)


def test_delete_member_and_leaving() -> None:
    xml = (
        f"<deletemember><eventtime>1</eventtime><initiator>{B}</initiator>"
        f"<target>{B}</target></deletemember>"
    )
    act = parse_thread_activity(activity("ThreadActivity/DeleteMember", xml))
    assert act is not None and act.kind is ThreadActivityKind.DELETE_MEMBER
    assert act.initiator == B and [t.mri for t in act.targets] == [B]


def test_topic_role_and_property_updates() -> None:
    topic = parse_thread_activity(
        activity(
            "ThreadActivity/TopicUpdate",
            "<topicupdate><eventtime>1600000000000</eventtime><initiator>8:orgid:A</initiator>"
            "<value>Plans &lt;Q3&gt; & more</value></topicupdate>",
        )
    )
    assert topic is not None and topic.kind is ThreadActivityKind.TOPIC_UPDATE
    assert topic.topic == "Plans <Q3> & more" and topic.initiator == "8:orgid:A"
    cleared = parse_thread_activity(
        activity("ThreadActivity/TopicUpdate", "<topicupdate><value/></topicupdate>")
    )
    assert cleared is not None and cleared.topic == ""
    role = parse_thread_activity(
        activity(
            "ThreadActivity/RoleUpdate",
            "<roleupdate><eventtime>1</eventtime><initiator>8:orgid:A</initiator>"
            "<target><id>8:orgid:B</id><role>admin</role></target></roleupdate>",
        )
    )
    assert role is not None and role.kind is ThreadActivityKind.ROLE_UPDATE
    assert role.targets == (ActivityMember("8:orgid:B", None, "admin"),)
    joining = parse_thread_activity(
        activity(
            "ThreadActivity/JoiningEnabledUpdate",
            "<joiningenabledupdate><initiator>8:orgid:A</initiator><value>true</value>"
            "</joiningenabledupdate>",
        )
    )
    assert joining is not None and joining.kind is ThreadActivityKind.JOINING_ENABLED_UPDATE
    assert joining.value == "true"
    history = parse_thread_activity(
        activity(
            "ThreadActivity/HistoryDisclosedUpdate",
            "<historydisclosedupdate><value>false</value></historydisclosedupdate>",
        )
    )
    assert history is not None and history.value == "false"
    picture = parse_thread_activity(
        activity(
            "ThreadActivity/PictureUpdate",
            "<pictureupdate><value>URL@https://example.invalid/p.png</value></pictureupdate>",
        )
    )
    assert picture is not None and picture.value == "https://example.invalid/p.png"


# -- thread activity: JSON --------------------------------------------------------------
def test_member_joined_and_left_json() -> None:
    joined = parse_thread_activity(
        activity(
            "ThreadActivity/MemberJoined",
            {
                "members": [
                    {"id": A, "friendlyname": "Ada", "meetingMemberType": "temp"},
                    {"id": B},
                    {"id": "bad/id"},
                ]
            },
        )
    )
    assert joined is not None and joined.kind is ThreadActivityKind.MEMBER_JOINED
    assert joined.targets == (ActivityMember(A, "Ada"), ActivityMember(B))
    left = parse_thread_activity(
        activity(
            "ThreadActivity/MemberLeft",
            {"members": [{"id": B}], "friendlyName": "Bob"},
        )
    )
    assert left is not None and left.kind is ThreadActivityKind.MEMBER_LEFT
    assert left.targets == (ActivityMember(B, "Bob"),)


def test_space_topic_updated_json() -> None:
    act = parse_thread_activity(
        activity("ThreadActivity/SpaceTopicUpdated", {"oldValue": "A", "newValue": "B", "user": A})
    )
    assert act is not None and act.kind is ThreadActivityKind.TOPIC_UPDATE
    assert (act.topic, act.old_topic, act.initiator) == ("B", "A", A)


@pytest.mark.parametrize("numbers", [int, str])
def test_member_consumption_horizon_update(numbers: type) -> None:
    act = parse_thread_activity(
        activity(
            "ThreadActivity/MemberConsumptionHorizonUpdate",
            {
                "user": f"{HOST}/contacts/{B}",
                "consumptionhorizon": "1700000000100;1700000000555;1700000000100",
                "messageVisibilityTime": numbers(1600000000000),
                "version": "1700000000556",
            },
        )
    )
    assert act is not None and act.kind is ThreadActivityKind.HORIZON_UPDATE
    assert act.horizon is not None
    assert act.horizon.mri == B and act.horizon.message_id == "1700000000100"
    assert act.horizon.read_time == datetime.fromtimestamp(1700000000.555, UTC)


# -- thread activity: hostile and unknown ---------------------------------------------
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<topicupdate><value>&lol2;</value></topicupdate>"
)
EXTERNAL = (
    '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<topicupdate><value>&xxe;</value></topicupdate>"
)


@pytest.mark.parametrize(
    ("messagetype", "content"),
    [
        ("ThreadActivity/TopicUpdate", BILLION_LAUGHS),
        ("ThreadActivity/TopicUpdate", EXTERNAL),
        ("ThreadActivity/TopicUpdate", "<topicupdate><value>unclosed"),
        ("ThreadActivity/TopicUpdate", "<a></a><b></b>"),
        ("ThreadActivity/AddMember", "[1, 2]"),
        ("ThreadActivity/AddMember", "{broken json"),
        ("ThreadActivity/SomethingNew", "<somethingnew/>"),
        ("ThreadActivity/SomethingNew", "{}"),
        ("RichText/Html", "<addmember><target>8:orgid:B</target></addmember>"),
        ("ThreadActivity/AddMember", "<addmember>" + "<x>" * 5000 + "</x>" * 5000 + "</addmember>"),
    ],
)
def test_hostile_malformed_or_unknown_is_none(messagetype: str, content: str) -> None:
    act = parse_thread_activity(activity(messagetype, content))
    if act is not None:  # deep nesting may parse; it must then carry nothing
        assert act.targets == () and act.topic is None
    assert parse_xml(BILLION_LAUGHS) is None and parse_xml(EXTERNAL) is None


def test_unknown_subtype_with_a_known_xml_root_is_understood() -> None:
    act = parse_thread_activity(activity("ThreadActivity/Whatever", ADD_XML))
    assert act is not None and act.kind is ThreadActivityKind.ADD_MEMBER


MESSAGE_TYPES = st.sampled_from(
    [
        "ThreadActivity/AddMember",
        "ThreadActivity/DeleteMember",
        "ThreadActivity/MemberJoined",
        "ThreadActivity/TopicUpdate",
        "ThreadActivity/SpaceTopicUpdated",
        "ThreadActivity/MemberConsumptionHorizonUpdate",
        "ThreadActivity/RoleUpdate",
        "Event/Call",
    ]
)
XMLISH = st.lists(
    st.sampled_from(
        [
            "<addmember>",
            "</addmember>",
            "<target>",
            "</target>",
            "<id>",
            "</id>",
            "<value>",
            "</value>",
            "<partlist type='ended'>",
            "</partlist>",
            "<part identity='8:x'>",
            "</part>",
            "<duration>",
            "</duration>",
            "&amp;",
            "&bogus;",
            "&#0;",
            "8:orgid:B",
            "-1",
            "99999999999999999999999",
            "<!DOCTYPE",
            "<ended/>",
            "]]>",
        ]
    ),
    max_size=30,
).map("".join)
JSON_KEYS = (
    "members id user consumptionhorizon newValue oldValue key users mri time value itemid "
    "messageId callState connectTime endTime originator threadId"
).split()
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(JSON_KEYS),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
).map(json.dumps)


@settings(max_examples=300)
@given(MESSAGE_TYPES, st.one_of(XMLISH, JSONISH, st.text(max_size=40)))
def test_parsers_never_raise(messagetype: str, content: str) -> None:
    msg = activity(messagetype, content)
    parse_thread_activity(msg)
    parse_call_event(msg)


@given(JSONISH)
def test_call_log_parser_never_raises(call_log: str) -> None:
    parse_call_event(message(properties={"call-log": call_log}))


# -- calls ------------------------------------------------------------------------------
def call(content: str, **overrides: Any) -> Message:
    return message(messagetype="Event/Call", content=content, **overrides)


def test_call_started_ended_missed() -> None:
    started = parse_call_event(
        call(
            f'<partlist type="started" alt=""><part identity="{A}"><name>Ada</name></part></partlist>'
        )
    )
    assert started is not None and started.kind is CallEventKind.STARTED
    assert [(p.mri, p.name) for p in started.participants] == [(A, "Ada")]
    assert started.originator == A
    ended = parse_call_event(
        call(
            f'<partlist type="ended" alt="" callId="c-1"><part identity="{A}"><name>Ada</name>'
            f'<duration>63</duration></part><part identity="{B}"><name>Bob</name>'
            "<duration>61</duration></part></partlist>"
        )
    )
    assert ended is not None and ended.kind is CallEventKind.ENDED
    assert ended.duration == 63 and ended.call_id == "c-1"
    missed = parse_call_event(call('<partlist type="missed" alt=""></partlist>'))
    assert missed is not None and missed.kind is CallEventKind.MISSED
    old = parse_call_event(call(f'<partlist alt=""><part identity="{A}"/><ended/></partlist>'))
    assert old is not None and old.kind is CallEventKind.ENDED
    assert parse_call_event(call("<partlist type='ended'")) is None
    assert parse_call_event(message()) is None


def test_call_logs() -> None:
    log = {
        "callId": "abc",
        "callDirection": "incoming",
        "callState": "accepted",
        "callType": "twoParty",
        "startTime": "2026-05-04T07:00:00.000Z",
        "connectTime": "2026-05-04T07:00:05.000Z",
        "endTime": "2026-05-04T07:01:08.0000000Z",
        "originator": B,
        "target": A,
        "threadId": "19:def@thread.v2",
        "originatorParticipant": {"type": "default", "displayName": "Bob"},
        "targetParticipant": {"type": "default", "displayName": "Ada"},
    }
    feed = {"conversationLink": f"{HOST}/conversations/48:calllogs", "messagetype": "Text"}
    for raw in (json.dumps(log), log):
        event = parse_call_event(message(properties={"call-log": raw}, **feed))
        assert event is not None and event.from_call_log
        assert event.kind is CallEventKind.ENDED and event.duration == 63
        assert event.conversation_id == "19:def@thread.v2" and event.call_id == "abc"
        assert event.originator == B and event.direction == "incoming"
        assert [(p.mri, p.name) for p in event.participants] == [(B, "Bob"), (A, "Ada")]
    for state, kind in (
        ("missed", CallEventKind.MISSED),
        ("declined", CallEventKind.DECLINED),
        ("cancelled", CallEventKind.MISSED),
    ):
        event = parse_call_event(
            message(properties={"call-log": {**log, "callState": state, "connectTime": None}})
        )
        assert event is not None and event.kind is kind and event.duration is None
    no_thread = parse_call_event(message(properties={"call-log": {**log, "threadId": "a/b"}}))
    assert no_thread is not None and no_thread.conversation_id == CONV
    assert parse_call_event(message(properties={"call-log": "not json"})) is None


@given(JSONISH, JSONISH, JSONISH, st.one_of(st.text(max_size=30), JSONISH))
def test_property_parsers_never_raise(
    emotions: str, mentions: str, quotes: str, horizon: str
) -> None:
    for props in (
        {"emotions": emotions, "mentions": mentions, "qtdMsgs": quotes},
        {
            "emotions": json.loads(emotions),
            "mentions": json.loads(mentions),
            "qtdMsgs": json.loads(quotes),
        },
    ):
        msg = message(properties=props)
        assert isinstance(msg.emotions, tuple)
        assert isinstance(msg.mentions, tuple)
        assert isinstance(msg.quoted_message_ids, tuple)
    parse_consumption_horizon(horizon)
    parse_consumption_horizon("\u00b2;\u0661\u0662;3")
