"""Edits, deletes, reactions, typing, read positions, topics, thread activity and calls
against the simulator: what the client sends, what the service then holds, and how the
pushed results parse, including the awkward wire variants."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from teams_bridge.teams import (
    ActivityMember,
    CallEventKind,
    EventMessage,
    Message,
    Reaction,
    TeamsClient,
    TeamsError,
    ThreadActivityKind,
    TrouterState,
    parse_call_event,
    parse_thread_activity,
)

from .conftest import Sim, SimFactory, logged_in_client
from .recorder import Recorder


@dataclass
class Setup:
    sim: Sim
    client: TeamsClient
    rec: Recorder
    ada: dict[str, Any]
    bob: dict[str, Any]
    carl: dict[str, Any]
    group: str

    async def wait_message(
        self, predicate: Callable[[Message], bool], resource_type: str | None = None
    ) -> Message:
        def found() -> Message | None:
            for event in self.rec.events:
                msg = event.message
                if msg is None or (resource_type and event.resource_type != resource_type):
                    continue
                if predicate(msg):
                    return msg
            return None

        await self.rec.wait(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

    async def wait_event(self, predicate: Callable[[EventMessage], bool]) -> EventMessage:
        await self.rec.wait(lambda: any(predicate(e) for e in self.rec.events))
        return next(e for e in self.rec.events if predicate(e))

    async def last_body(self, path_contains: str, method: str) -> tuple[dict[str, Any], Any]:
        recorded = await self.sim.control.requests(path_contains=path_contains, method=method)
        assert recorded, f"no {method} {path_contains}"
        last = recorded[-1]
        return last, json.loads(last["body"]) if last["body"] else None

    async def stored(self, message_id: str) -> dict[str, Any]:
        return next(
            m for m in await self.sim.control.list_messages(self.group) if m["id"] == message_id
        )


@pytest.fixture
async def make_setup(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory
) -> AsyncIterator[Callable[..., Any]]:
    clients: list[TeamsClient] = []

    async def make(**options: Any) -> Setup:
        sim = await sim_factory(**options)
        ada = await sim.control.create_user("Ada Lovelace")
        bob = await sim.control.create_user("Bob Builder")
        carl = await sim.control.create_user("Carl Sagan")
        group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]], topic="Plans")
        client = await logged_in_client(http_session, sim, ada["mri"])
        clients.append(client)
        await client.connect()
        rec = Recorder()
        client.start_trouter(rec.on_event, rec.on_state, rec.on_resync)
        await rec.wait(lambda: any(s is TrouterState.CONNECTED for s, _ in rec.states))
        await sim.control.wait_for_registration(ada["mri"])
        return Setup(sim, client, rec, ada, bob, carl, group["id"])

    try:
        yield make
    finally:
        for client in clients:
            await client.stop()


def new_cmid() -> str:
    return str(uuid.uuid4().int)[:19]


def close_to_now(ms: int) -> bool:
    return abs(ms - time.time() * 1000) < 60_000


async def test_edit_react_and_delete_own_message(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup()
    mid = await s.client.send_message(
        s.group, "<p>v1</p>", client_message_id=new_cmid(), display_name="Ada"
    )
    await s.sim.control.clear_requests()

    # Edit: PUT with the send body shape and a fresh clientmessageid.
    await s.client.edit_message(
        s.group, mid, "<p>v2</p>", display_name="Ada", properties={"importance": "high"}
    )
    req, body = await s.last_body(f"/messages/{mid}", "PUT")
    assert req["path"].endswith(f"/users/ME/conversations/{s.group}/messages/{mid}")
    assert body["content"] == "<p>v2</p>"
    assert body["messagetype"] == "RichText/Html" and body["contenttype"] == "text"
    assert body["imdisplayname"] == "Ada" and body["properties"] == {"importance": "high"}
    assert body["clientmessageid"].isdigit()
    stored = await s.stored(mid)
    assert stored["content"] == "<p>v2</p>" and "edittime" in stored["properties"]
    edit = await s.wait_message(lambda m: m.id == mid and m.content == "<p>v2</p>")
    assert edit.is_edited and edit.edited_id and edit.edit_time is not None
    assert edit.from_update and not edit.is_deleted

    await s.client.edit_message(
        s.group, mid, "<p>v3</p>", display_name="Ada", client_message_id="4242"
    )
    _, body = await s.last_body(f"/messages/{mid}", "PUT")
    assert body["clientmessageid"] == "4242"

    # Reaction on an edited message: the update comes without skypeeditedid.
    await s.client.add_reaction(s.group, mid, "like")
    req, body = await s.last_body(f"/messages/{mid}/properties", "PUT")
    assert req["query"] == {"name": "emotions"}
    assert body["emotions"]["key"] == "like"
    assert isinstance(body["emotions"]["value"], int) and close_to_now(body["emotions"]["value"])
    stored = await s.stored(mid)
    assert stored["properties"]["emotions"][0]["users"][0]["mri"] == s.ada["mri"]
    reacted = await s.wait_message(lambda m: m.id == mid and bool(m.emotions), "MessageUpdate")
    assert reacted.emotions == (Reaction("like", s.ada["mri"], reacted.emotions[0].time_ms),)
    assert reacted.edited_id is None and reacted.content == "<p>v3</p>"
    assert not reacted.is_deleted

    await s.client.remove_reaction(s.group, mid, "like")
    req, body = await s.last_body(f"/messages/{mid}/properties", "DELETE")
    assert req["query"] == {"name": "emotions"} and body == {"emotions": {"key": "like"}}
    stored = await s.stored(mid)
    assert stored["properties"]["emotions"] == [{"key": "like", "users": []}]
    n_events = len(s.rec.events)
    await s.rec.wait(
        lambda: any(
            e.message is not None and e.message.id == mid and not e.message.emotions
            for e in s.rec.events[n_events - 1 :]
        )
    )

    # Delete: soft delete, the message stays with empty content.
    await s.client.delete_message(s.group, mid)
    req, body = await s.last_body(f"/messages/{mid}", "DELETE")
    assert req["query"] == {"behavior": "softDelete"} and body is None
    stored = await s.stored(mid)
    assert stored["content"] == "" and "deletetime" in stored["properties"]
    gone = await s.wait_message(lambda m: m.id == mid and m.content == "", "MessageUpdate")
    assert gone.is_deleted and gone.delete_time is not None
    history = {m.id: m for m in await s.client.list_messages(s.group)}
    assert history[mid].is_deleted


async def test_others_messages_cannot_be_edited_but_can_be_reacted_to(
    make_setup: Callable[..., Any],
) -> None:
    s: Setup = await make_setup()
    theirs = await s.sim.control.post_message(s.group, s.bob["mri"], "<p>bob</p>")
    with pytest.raises(TeamsError) as info:
        await s.client.edit_message(s.group, theirs["id"], "<p>x</p>", display_name="Ada")
    assert info.value.status == 403
    with pytest.raises(TeamsError):
        await s.client.delete_message(s.group, theirs["id"])
    await s.client.add_reaction(s.group, theirs["id"], "1f6a5_horizontaltrafficlight")
    stored = await s.stored(theirs["id"])
    assert stored["properties"]["emotions"][0]["key"] == "1f6a5_horizontaltrafficlight"
    with pytest.raises(ValueError):
        await s.client.delete_message(s.group, "12/../34")
    with pytest.raises(ValueError):
        await s.client.add_reaction(s.group, theirs["id"], " ")


async def test_typing_read_position_and_topic(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup()
    theirs = await s.sim.control.post_message(s.group, s.bob["mri"], "<p>read me</p>")
    before = len(await s.sim.control.list_messages(s.group))
    await s.sim.control.clear_requests()

    await s.client.send_typing(s.group)
    _, body = await s.last_body(f"/conversations/{s.group}/messages", "POST")
    assert body == {
        "content": "",
        "contenttype": "Application/Message",
        "messagetype": "Control/Typing",
    }
    await s.wait_message(lambda m: m.message_type == "Control/Typing")
    assert len(await s.sim.control.list_messages(s.group)) == before  # not stored

    await s.client.set_consumption_horizon(s.group, theirs["id"])
    req, body = await s.last_body(f"/conversations/{s.group}/properties", "PUT")
    assert req["query"] == {"name": "consumptionhorizon"}
    match = re.fullmatch(r"(\d+);(\d+);(\d+)", body["consumptionhorizon"])
    assert match and match.group(1) == match.group(3) == theirs["id"]
    assert close_to_now(int(match.group(2)))
    update = await s.wait_event(
        lambda e: (
            e.conversation is not None
            and e.conversation.consumption_horizon is not None
            and e.conversation.consumption_horizon.message_id == theirs["id"]
        )
    )
    assert update.resource_type == "ConversationUpdate"
    horizons = {h.mri: h for h in await s.client.get_consumption_horizons(s.group)}
    assert horizons[s.ada["mri"]].message_id == theirs["id"]
    assert horizons[s.bob["mri"]].message_id is None  # "0;0;0"
    with pytest.raises(ValueError):
        await s.client.set_consumption_horizon(s.group, "latest")

    # Someone else's read position arrives as a thread-activity message.
    await s.sim.control.set_horizon(
        s.group, s.bob["mri"], f"{theirs['id']};{int(time.time() * 1000)};{theirs['id']}"
    )
    notice = await s.wait_message(
        lambda m: m.message_type == "ThreadActivity/MemberConsumptionHorizonUpdate"
    )
    read = parse_thread_activity(notice)
    assert read is not None and read.kind is ThreadActivityKind.HORIZON_UPDATE
    assert read.horizon is not None and read.horizon.mri == s.bob["mri"]
    assert read.horizon.message_id == theirs["id"] and read.horizon.read_time is not None

    await s.client.set_topic(s.group, "New & improved")
    req, body = await s.last_body(f"/threads/{s.group}/properties", "PUT")
    assert req["query"] == {"name": "topic"} and body == {"topic": "New & improved"}
    assert (await s.sim.control.get_chat(s.group))["topic"] == "New & improved"
    notice = await s.wait_message(lambda m: m.message_type == "ThreadActivity/TopicUpdate")
    topic = parse_thread_activity(notice)
    assert topic is not None and topic.kind is ThreadActivityKind.TOPIC_UPDATE
    assert topic.topic == "New & improved" and topic.initiator == s.ada["mri"]
    assert (await s.client.get_thread(s.group)).topic == "New & improved"


async def test_send_with_message_type_and_properties(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup()
    mentions = json.dumps(
        [{"@type": "http://schema.skype.com/Mention", "itemid": 0, "mri": s.bob["mri"]}]
    )
    quotes = json.dumps([{"messageId": "1700000000001", "sender": s.bob["mri"]}])
    mid = await s.client.send_message(
        s.group,
        "hello Bob",
        client_message_id=new_cmid(),
        display_name="Ada",
        message_type="Text",
        properties={"mentions": mentions, "qtdMsgs": quotes},
    )
    _, body = await s.last_body(f"/conversations/{s.group}/messages", "POST")
    assert body["messagetype"] == "Text"
    assert body["properties"] == {"mentions": mentions, "qtdMsgs": quotes}
    stored = await s.stored(mid)
    assert stored["messagetype"] == "Text" and stored["properties"]["mentions"] == mentions
    got = await s.client.get_message(s.group, mid)
    assert got.message_type == "Text"
    assert [(m.item_id, m.mri) for m in got.mentions] == [("0", s.bob["mri"])]
    assert got.quoted_message_ids == ("1700000000001",)


async def test_awkward_wire_variants(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup(
        display_name_key="imDisplayName",
        numbers_as_strings="always",
        emotion_history="always",
        edit_markers="skypeeditedid",
        delete_markers="content_only",
        thread_activity_format="json",
    )
    control = s.sim.control
    await control.add_member(s.group, s.carl["mri"], by=s.bob["mri"])
    posted = await control.post_message(
        s.group,
        s.bob["mri"],
        "<p>Hi {mention:0}, meet {mention:1}</p>",
        mentions=[{"mri": s.ada["mri"]}, {"mri": s.carl["mri"], "split": False}],
    )
    mid = posted["id"]
    incoming = await s.wait_message(lambda m: m.id == mid, "NewMessage")
    assert incoming.sender_name == "Bob Builder"  # from imDisplayName
    assert [(m.item_id, m.mri, m.display_name) for m in incoming.mentions] == [
        ("0", s.ada["mri"], "Ada"),
        ("1", s.ada["mri"], "Lovelace"),
        ("2", s.carl["mri"], "Carl Sagan"),
    ]
    assert 'itemid="1">Lovelace</span>' in incoming.content

    # Reaction history, a re-added reaction, an empty key left behind; numbers as strings.
    await control.react(s.group, mid, s.bob["mri"], "like")
    await control.react(s.group, mid, s.bob["mri"], "like")
    await control.react(s.group, mid, s.carl["mri"], "heart")
    await control.react(s.group, mid, s.carl["mri"], "heart", remove=True)
    await control.react(s.group, mid, s.carl["mri"], "like")
    stored = await s.stored(mid)
    like = next(e for e in stored["properties"]["emotions"] if e["key"] == "like")
    assert [u["mri"] for u in like["users"]].count(s.bob["mri"]) == 2
    latest = await s.wait_message(
        lambda m: m.id == mid and ("like", s.carl["mri"]) in [(r.key, r.mri) for r in m.emotions]
    )
    assert [(r.key, r.mri) for r in latest.emotions] == [
        ("like", s.bob["mri"]),
        ("like", s.carl["mri"]),
    ]
    bob_like = latest.emotions[0].time_ms
    assert bob_like == max(int(u["time"]) for u in like["users"] if u["mri"] == s.bob["mri"])

    # An edit marked only by skypeeditedid; a delete marked only by empty content.
    await control.edit_message(s.group, mid, s.bob["mri"], "<p>edited</p>")
    edited = await s.wait_message(lambda m: m.id == mid and m.content == "<p>edited</p>")
    assert edited.is_edited and edited.edit_time is None
    await control.delete_message(s.group, mid, s.bob["mri"])
    deleted = await s.wait_message(lambda m: m.id == mid and m.content == "", "MessageUpdate")
    assert deleted.is_deleted and deleted.delete_time is None

    # History pages with string numbers still parse.
    history = await s.client.list_messages(s.group)
    assert mid in [m.id for m in history]
    assert all(m.version is not None for m in history)

    # JSON thread activity: MemberJoined / SpaceTopicUpdated / MemberLeft.
    joined = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/MemberJoined")
    )
    assert joined is not None and joined.kind is ThreadActivityKind.MEMBER_JOINED
    assert joined.targets == (ActivityMember(s.carl["mri"], "Carl Sagan"),)
    await control.set_topic(s.group, "Renamed", by=s.bob["mri"])
    renamed = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/SpaceTopicUpdated")
    )
    assert renamed is not None and renamed.kind is ThreadActivityKind.TOPIC_UPDATE
    assert (renamed.topic, renamed.old_topic, renamed.initiator) == (
        "Renamed",
        "Plans",
        s.bob["mri"],
    )
    await control.remove_member(s.group, s.carl["mri"], by=s.carl["mri"])
    left = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/MemberLeft")
    )
    assert left is not None and left.kind is ThreadActivityKind.MEMBER_LEFT
    assert [t.mri for t in left.targets] == [s.carl["mri"]]

    # The read-position notice carries messageVisibilityTime as a string here.
    await control.set_horizon(s.group, s.bob["mri"], f"{mid};{mid};{mid}")
    notice = await s.wait_message(
        lambda m: m.message_type == "ThreadActivity/MemberConsumptionHorizonUpdate"
    )
    assert isinstance(json.loads(notice.content)["messageVisibilityTime"], str)
    read = parse_thread_activity(notice)
    assert read is not None and read.horizon is not None and read.horizon.message_id == mid


async def test_xml_roster_notices(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup()
    dave = await s.sim.control.create_user("Dave Bowman")
    await s.sim.control.add_members(s.group, [s.carl["mri"], dave["mri"]], by=s.bob["mri"])
    added = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/AddMember")
    )
    assert added is not None and added.kind is ThreadActivityKind.ADD_MEMBER
    assert (added.initiator, added.initiator_name) == (s.bob["mri"], "Bob Builder")
    assert added.targets == (
        ActivityMember(s.carl["mri"], "Carl Sagan"),
        ActivityMember(dave["mri"], "Dave Bowman"),
    )
    await s.sim.control.set_role(s.group, dave["mri"], "Admin", by=s.bob["mri"])
    role = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/RoleUpdate")
    )
    assert role is not None and role.kind is ThreadActivityKind.ROLE_UPDATE
    assert role.targets == (ActivityMember(dave["mri"], None, "admin"),)
    thread = await s.client.get_thread(s.group)
    assert {m.mri: m.role for m in thread.members}[dave["mri"]] == "Admin"
    await s.sim.control.remove_member(s.group, dave["mri"], by=s.bob["mri"])
    removed = parse_thread_activity(
        await s.wait_message(lambda m: m.message_type == "ThreadActivity/DeleteMember")
    )
    assert removed is not None and removed.kind is ThreadActivityKind.DELETE_MEMBER
    assert removed.initiator == s.bob["mri"] and removed.targets[0].mri == dave["mri"]


async def test_call_notices_and_call_logs(make_setup: Callable[..., Any]) -> None:
    s: Setup = await make_setup()
    control = s.sim.control
    people = [s.bob["mri"], s.ada["mri"]]
    await control.post_call(s.group, "started", people, by=s.bob["mri"], call_id="c-1")
    await control.post_call(s.group, "ended", people, duration=63, by=s.bob["mri"])
    await control.post_call(s.group, "ended", people, by=s.bob["mri"], ended_tag=True)
    await control.post_call(s.group, "missed", [s.bob["mri"]], by=s.bob["mri"])
    await s.rec.wait(lambda: len(s.rec.messages(s.group, "NewMessage")) >= 4)
    calls = [
        parse_call_event(m)
        for m in s.rec.messages(s.group, "NewMessage")
        if m.message_type == "Event/Call"
    ]
    assert [c.kind if c else None for c in calls] == [
        CallEventKind.STARTED,
        CallEventKind.ENDED,
        CallEventKind.ENDED,
        CallEventKind.MISSED,
    ]
    assert calls[0] is not None and calls[0].call_id == "c-1"
    assert [p.name for p in calls[0].participants] == ["Bob Builder", "Ada Lovelace"]
    assert calls[1] is not None and calls[1].duration == 63
    assert calls[0].originator == s.bob["mri"]

    await control.post_call_log(
        s.ada["mri"], originator=s.bob["mri"], state="accepted", duration=42, thread_id=s.group
    )
    await control.post_call_log(
        s.ada["mri"], originator=s.bob["mri"], state="missed", as_string=False
    )
    await s.rec.wait(lambda: len(s.rec.messages("48:calllogs")) >= 2)
    logs = [parse_call_event(m) for m in s.rec.messages("48:calllogs")]
    assert logs[0] is not None and logs[0].from_call_log
    assert logs[0].kind is CallEventKind.ENDED and logs[0].duration == 42
    assert logs[0].conversation_id == s.group and logs[0].direction == "incoming"
    assert logs[1] is not None and logs[1].kind is CallEventKind.MISSED
    assert logs[1].conversation_id == "48:calllogs"
