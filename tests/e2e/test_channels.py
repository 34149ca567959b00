"""Teams channels as rooms: root posts are messages, channel threads are Matrix threads,
both ways, through edits, reactions, deletes and a catch-up after a restart; and mentions
of everyone (Teams' "@Everyone"/channel mentions, Matrix's @room) both ways.

Each step acts on one side and asserts the exact result on the other: the Matrix event as
the homeserver serves it, and the raw request path and body the simulator recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, raw_event, recorded, wait_for

MENTION = "http://schema.skype.com/Mention"
REPLY = "http://schema.skype.com/Reply"
STOP_TIMEOUT = 5


def _seg(value: str) -> str:
    return quote(value, safe="")


def _path(request: dict[str, Any]) -> str:
    """The path exactly as sent (still percent-encoded), without the query."""
    return request["raw_path"].split("?", 1)[0]


@dataclass
class Channel:
    reg: Any
    control: Any
    mx: Any
    bridge: Any
    me: dict[str, Any]
    ada: dict[str, Any]
    bob: dict[str, Any]
    team: dict[str, Any]
    chan: str
    room: str

    def puppet(self, user: dict[str, Any]) -> str:
        return puppet_mxid(self.reg, user["mri"])

    async def says(self, user: dict[str, Any], content: str, **extra: Any):
        """Post in the channel as a Teams user; (message id, the Matrix event)."""
        posted = await self.control.post_message(
            self.chan, sender=user["mri"], content=content, **extra
        )
        return posted["id"], await self.arrived(user, posted["id"])

    async def arrived(self, user: dict[str, Any], message_id: str):
        puppet = self.puppet(user)
        return await self.mx.wait_for_event(
            self.room,
            lambda e: (
                e.type == EventType.ROOM_MESSAGE
                and e.sender == puppet
                and e.timestamp == int(message_id)
            ),
        )

    async def content(self, event_id: str) -> dict[str, Any]:
        return (await raw_event(self.mx, self.room, event_id))["content"]

    async def teams_message(self, text: str) -> dict[str, Any]:
        """The stored Teams message of ours whose content contains `text`."""

        async def find():
            for message in await self.control.list_messages(self.chan):
                mine = message.get("from", "").endswith(self.me["mri"])
                if mine and text in message.get("content", ""):
                    return message
            return None

        return await wait_for(find)


def _rel_type(evt: Any) -> str | None:
    relates = getattr(evt.content, "relates_to", None)
    rel_type = getattr(relates, "rel_type", None) if relates else None
    return getattr(rel_type, "value", rel_type)


def _thread(root: str, latest: str, falling_back: bool = True) -> dict[str, Any]:
    return {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": falling_back,
        "m.in_reply_to": {"event_id": latest},
    }


async def _channel_setup(backend, synapse, bridge_factory, control, mx) -> Channel:
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    team = await control.create_team("Contoso", [ada["mri"], me["mri"], bob["mri"]], ["Design"])
    chan = team["channels"][1]["id"]
    await control.post_message(chan, sender=ada["mri"], content="<p>before the bridge</p>")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(mx, reg, control, me["mri"])
    room = await mx.wait_for_invite(lambda inv: inv.name == "Design (Contoso)", timeout=60)
    await mx.join(room)
    await mx.wait_for_invite(lambda inv: inv.name == "General (Contoso)")
    await control.wait_for_registration(me["mri"], timeout=60)
    return Channel(reg, control, mx, bridge, me, ada, bob, team, chan, room)


@pytest.mark.parametrize("backend", ["pg", "lite"])
async def test_channel_threads_both_ways(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    c = await _channel_setup(backend, synapse, bridge_factory, control, matrix_user)
    mx, bob_p = matrix_user, c.puppet(c.bob)

    # The room says which team it belongs to (a space per team can gather rooms by it).
    state_path = (
        f"/_matrix/client/v3/rooms/{quote(c.room)}/state/m.bridge/"
        f"{_seg(f'net.teams://teams/{c.chan}')}"
    )
    bridge_info = await mx.client.api.request("GET", state_path)
    assert bridge_info["network"] == {"id": c.team["id"], "displayname": "Contoso"}
    assert bridge_info["channel"] == {"id": c.chan, "displayname": "Design (Contoso)"}

    # Teams -> Matrix: a root post is a plain message; replies in its thread are m.thread
    # events whose fallback reply points at the newest event of the thread. The thread is
    # named by conversationLink (`;messageid=`) or by rootMessageId/parentMessageId.
    root_id, root = await c.says(c.ada, "<p>root post</p>")
    assert await c.content(root.event_id) == {
        "msgtype": "m.text",
        "body": "root post",
        "m.mentions": {"user_ids": []},
    }
    r1_id, r1 = await c.says(c.bob, "<p>first reply</p>", thread_root=root_id)
    assert await c.content(r1.event_id) == {
        "msgtype": "m.text",
        "body": "first reply",
        "m.mentions": {"user_ids": []},
        "m.relates_to": _thread(root.event_id, root.event_id),
    }
    fake_teams.options.channel_thread_ids = "fields"
    r2_id, r2 = await c.says(c.ada, "<p>second reply</p>", thread_root=root_id)
    assert (await c.content(r2.event_id))["m.relates_to"] == _thread(root.event_id, r1.event_id)
    fake_teams.options.channel_thread_ids = "link"
    # A reply that quotes one message of the thread replies to it for real.
    quote_html = (
        f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{r1_id}"><strong itemprop="mri" '
        f'itemid="{c.bob["mri"]}">Bob Babbage</strong><span itemprop="time" itemid="{r1_id}">'
        '</span><p itemprop="preview">first reply</p></blockquote><p>quoting</p>'
    )
    r3_id, r3 = await c.says(c.bob, quote_html, thread_root=root_id)
    content = await c.content(r3.event_id)
    assert content["body"] == "quoting"
    assert content["m.relates_to"] == _thread(root.event_id, r1.event_id, falling_back=False)

    # Matrix -> Teams: a thread event posts to <channel>;messageid=<root>, escaped as one
    # path segment; its echo maps onto the event and is not bridged back.
    thread_path = f"/users/ME/conversations/{_seg(f'{c.chan};messageid={root_id}')}/messages"
    await c.control.clear_requests()
    m1 = await mx.client.send_message_event(
        c.room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.text",
            "body": "from matrix in the thread",
            "m.relates_to": _thread(root.event_id, r3.event_id),
        },
    )
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(thread_path)
    assert post["json"]["content"] == "<p>from matrix in the thread</p>"
    assert post["json"]["properties"] == {}
    m1_msg = await c.teams_message("from matrix in the thread")
    assert m1_msg["clientmessageid"] == post["json"]["clientmessageid"]
    assert m1_msg["conversationLink"].endswith(f"/{c.chan};messageid={root_id}")

    # A plain Matrix reply to a message in a thread goes to that thread, with the quote;
    # a reply to the root post answers in its thread without one; a plain message is a new
    # root post.
    await c.control.clear_requests()
    await mx.reply_text(c.room, r2.event_id, "answering the second reply")
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(thread_path)
    assert post["json"]["content"] == (
        f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{r2_id}"><strong itemprop="mri" '
        f'itemid="{c.ada["mri"]}">Ada Lovelace</strong><span itemprop="time" itemid="{r2_id}">'
        '</span><p itemprop="preview">second reply</p></blockquote>'
        "<p>answering the second reply</p>"
    )
    await c.control.clear_requests()
    await mx.reply_text(c.room, root.event_id, "answering the root")
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(thread_path)
    assert post["json"]["content"] == "<p>answering the root</p>"
    await c.control.clear_requests()
    await mx.send_text(c.room, "a new post")
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(f"/users/ME/conversations/{_seg(c.chan)}/messages")
    new_post = await c.teams_message("a new post")
    assert new_post["conversationLink"].endswith(f"/{c.chan};messageid={new_post['id']}")
    for text in ("answering the second reply", "answering the root"):
        message = await c.teams_message(text)
        assert message["conversationLink"].endswith(f";messageid={root_id}")
    # A file sent in the thread goes there too.
    await c.control.clear_requests()
    mxc = await mx.client.upload_media(b"notes\n", mime_type="text/plain", filename="notes.txt")
    notes = await mx.client.send_message_event(
        c.room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.file",
            "body": "notes.txt",
            "url": mxc,
            "info": {"mimetype": "text/plain", "size": 6},
            "m.relates_to": _thread(root.event_id, m1),
        },
    )
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(thread_path)
    assert post["json"]["messagetype"] == "RichText/Media_GenericFile"
    # The newest event of the Matrix thread is the last thread event sent from Matrix
    # (plain replies stay out of Matrix threads).
    _, r4 = await c.says(c.bob, "<p>after matrix</p>", thread_root=root_id)
    assert (await c.content(r4.event_id))["m.relates_to"] == _thread(root.event_id, notes)

    # Edits and reactions of thread replies, Teams -> Matrix.
    await c.control.edit_message(c.chan, r1_id, c.bob["mri"], "<p>first reply, edited</p>")
    edit = await mx.wait_for_event(
        c.room,
        lambda e: e.sender == bob_p and _rel_type(e) == "m.replace",
    )
    content = await c.content(edit.event_id)
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": r1.event_id}
    assert content["m.new_content"]["body"] == "first reply, edited"
    await c.control.react(c.chan, r2_id, c.bob["mri"], "heart")
    reaction = await mx.wait_for_event(
        c.room, lambda e: e.type == EventType.REACTION and e.sender == bob_p
    )
    assert (await c.content(reaction.event_id))["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": r2.event_id,
        "key": "❤️",
    }

    # Edits and reactions of thread replies, Matrix -> Teams: addressed by the channel id.
    channel_messages = f"/users/ME/conversations/{_seg(c.chan)}/messages"
    await c.control.clear_requests()
    await mx.edit_text(c.room, m1, "from matrix, edited")
    (put,) = await recorded(c.control, "PUT", f"/messages/{m1_msg['id']}")
    assert _path(put).endswith(f"{channel_messages}/{m1_msg['id']}")
    assert put["json"]["content"] == "<p>from matrix, edited</p>"
    await c.control.clear_requests()
    await mx.react(c.room, r2.event_id, "👍")
    (put,) = await recorded(c.control, "PUT", f"/messages/{r2_id}/properties")
    assert _path(put).endswith(f"{channel_messages}/{r2_id}/properties")
    assert put["json"]["emotions"]["key"] == "like"

    # Catch-up: what happened in Teams while the bridge was down arrives in order, replies
    # in their threads (the newest event of a thread is then asked of the homeserver).
    await c.bridge.astop(timeout=STOP_TIMEOUT)
    root2 = await c.control.post_message(c.chan, c.bob["mri"], "<p>second root</p>")
    in2 = await c.control.post_message(
        c.chan, c.ada["mri"], "<p>in the second thread</p>", thread_root=root2["id"]
    )
    late = await c.control.post_message(
        c.chan, c.ada["mri"], "<p>late in the first thread</p>", thread_root=root_id
    )
    await c.bridge.astart()
    await c.control.wait_for_registration(c.me["mri"], timeout=60)
    root2_evt = await c.arrived(c.bob, root2["id"])
    in2_evt = await c.arrived(c.ada, in2["id"])
    late_evt = await c.arrived(c.ada, late["id"])
    order = [e.event_id for e in mx.timeline[c.room]]
    assert order.index(root2_evt.event_id) < order.index(in2_evt.event_id)
    assert order.index(in2_evt.event_id) < order.index(late_evt.event_id)
    assert "m.relates_to" not in await c.content(root2_evt.event_id)
    assert (await c.content(in2_evt.event_id))["m.relates_to"] == _thread(
        root2_evt.event_id, root2_evt.event_id
    )
    assert (await c.content(late_evt.event_id))["m.relates_to"] == _thread(
        root.event_id, r4.event_id
    )

    # After the restart a reply's thread is asked of Teams before the answer goes there.
    await c.control.clear_requests()
    await mx.reply_text(c.room, r2.event_id, "still in the thread")
    (post,) = await recorded(c.control, "POST", "/messages")
    assert _path(post).endswith(thread_path)
    (get,) = await recorded(c.control, "GET", f"/messages/{r2_id}")
    assert _path(get).endswith(f"{channel_messages}/{r2_id}")

    # Deletes of thread replies, both ways (the channel id again).
    await c.control.delete_message(c.chan, r3_id, c.bob["mri"])
    redaction = await mx.wait_for_event(
        c.room, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == r3.event_id
    )
    assert redaction.sender == bob_p
    await c.control.clear_requests()
    await mx.redact(c.room, m1)
    (delete,) = await recorded(c.control, "DELETE", f"/messages/{m1_msg['id']}")
    assert _path(delete).endswith(f"{channel_messages}/{m1_msg['id']}")
    assert delete["query"] == {"behavior": "softDelete"}

    # Nothing came back from our own sends.
    await c.says(c.ada, "<p>the end</p>")
    assert not [e for e in mx.timeline[c.room] if e.sender == c.puppet(c.me)]
    await c.bridge.astop(timeout=STOP_TIMEOUT)


@pytest.mark.parametrize("backend", ["lite"])
async def test_everyone_mentions_both_ways(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    c = await _channel_setup(backend, synapse, bridge_factory, control, matrix_user)
    mx = matrix_user
    group = await control.create_chat(
        kind="group", members=[c.me["mri"], c.ada["mri"], c.bob["mri"]], topic="Lunch"
    )
    dm = await control.create_chat(kind="one_to_one", members=[c.me["mri"], c.ada["mri"]])
    # A chat's first message makes its room.
    await control.post_message(group["id"], sender=c.ada["mri"], content="<p>hi all</p>")
    group_room = await mx.join(await mx.wait_for_invite(lambda inv: inv.name == "Lunch"))
    await control.post_message(dm["id"], sender=c.ada["mri"], content="<p>hi you</p>")
    dm_room = await mx.join(
        await mx.wait_for_invite(lambda inv: inv.is_direct and inv.sender == c.puppet(c.ada))
    )

    # Teams -> Matrix: a group chat's "@Everyone" and a channel mention are @room and
    # m.mentions.room; person mentions stay pills.
    posted = await control.post_message(
        group["id"],
        sender=c.ada["mri"],
        content="<p>{mention:0} lunch?</p>",
        mentions=[{"mri": group["id"], "text": "Everyone", "mention_type": "chat"}],
    )
    evt = await mx.wait_for_event(group_room, lambda e: e.timestamp == int(posted["id"]))
    assert (await raw_event(mx, group_room, evt.event_id))["content"] == {
        "msgtype": "m.text",
        "body": "@room lunch?",
        "m.mentions": {"user_ids": [], "room": True},
    }
    _, evt = await c.says(
        c.bob,
        "<p>{mention:0} and {mention:1}: standup</p>",
        mentions=[
            {"mri": c.chan, "text": "Design", "mention_type": "channel"},
            {"mri": c.me["mri"], "split": False},
        ],
    )
    assert await c.content(evt.event_id) == {
        "msgtype": "m.text",
        "body": "@room and Grace Hopper: standup",
        "format": "org.matrix.custom.html",
        "formatted_body": (
            f'<p>@room and <a href="https://matrix.to/#/{mx.user_id}">Grace Hopper</a>: standup</p>'
        ),
        "m.mentions": {"user_ids": [mx.user_id], "room": True},
    }

    # Matrix -> Teams: m.mentions.room (or a bare @room from a client without m.mentions)
    # is the chat's "@Everyone" or the channel's mention; in a 1:1 it stays text.
    async def sent_from(room: str, chat_id: str, content: dict[str, Any]) -> dict[str, Any]:
        await control.clear_requests()
        await mx.client.send_message_event(room, EventType.ROOM_MESSAGE, content)
        (post,) = await recorded(control, "POST", f"{chat_id}/messages")
        return post["json"]

    def everyone(chat_id: str, kind: str, name: str) -> list[dict[str, Any]]:
        return [
            {
                "@type": MENTION,
                "itemid": 0,
                "mri": chat_id,
                "mentionType": kind,
                "displayName": name,
            }
        ]

    body = await sent_from(
        group_room,
        group["id"],
        {"msgtype": "m.text", "body": "@room food is here", "m.mentions": {"room": True}},
    )
    assert body["content"] == (
        f'<p><span itemscope="" itemtype="{MENTION}" itemid="0">Everyone</span> food is here</p>'
    )
    assert json.loads(body["properties"]["mentions"]) == everyone(group["id"], "chat", "Everyone")
    body = await sent_from(group_room, group["id"], {"msgtype": "m.text", "body": "ping @room"})
    assert body["content"] == (
        f'<p>ping <span itemscope="" itemtype="{MENTION}" itemid="0">Everyone</span></p>'
    )
    body = await sent_from(
        group_room,
        group["id"],
        {"msgtype": "m.text", "body": "@room is just text", "m.mentions": {}},
    )
    assert body["content"] == "<p>@room is just text</p>" and body["properties"] == {}
    body = await sent_from(
        c.room,
        c.chan,
        {"msgtype": "m.text", "body": "@room standup now", "m.mentions": {"room": True}},
    )
    assert body["content"] == (
        f'<p><span itemscope="" itemtype="{MENTION}" itemid="0">Design</span> standup now</p>'
    )
    assert json.loads(body["properties"]["mentions"]) == everyone(c.chan, "channel", "Design")
    body = await sent_from(
        dm_room, dm["id"], {"msgtype": "m.text", "body": "@room hi", "m.mentions": {"room": True}}
    )
    assert body["content"] == "<p>@room hi</p>" and body["properties"] == {}
    await c.bridge.astop(timeout=STOP_TIMEOUT)
