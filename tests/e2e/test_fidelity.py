"""A message looks and behaves the same on both sides: formatting, mentions, replies, edits,
deletes, reactions, typing, read receipts, membership, topics, calls and display names.

Each step acts on one side and asserts the exact result on the other: Matrix event content
as the homeserver serves it, and the raw request bodies the simulator recorded. The
simulator's input variants are switched on along the way (split mention spans, numbers as
strings, emotion histories, both `imdisplayname` spellings, XML and JSON roster notices).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.types import EventType, ReceiptType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

MENTION = "http://schema.skype.com/Mention"
REPLY = "http://schema.skype.com/Reply"
# A SIGTERM that lands in a weakref callback is swallowed (mautrix turns it into a
# KeyboardInterrupt); do not wait the fixture's 20 s for such a bridge.
STOP_TIMEOUT = 5


@dataclass
class Setup:
    reg: Any
    control: Any
    mx: Any
    bridge: Any
    me: dict[str, Any]
    ada: dict[str, Any]
    bob: dict[str, Any]
    chat: str
    room: str
    old_id: str  # a message from before the bridge knew the chat

    def puppet(self, user: dict[str, Any]) -> str:
        return puppet_mxid(self.reg, user["mri"])


async def _setup(backend, synapse, bridge_factory, control, mx, topic) -> Setup:
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    chat = await control.create_chat(
        kind="group", members=[me["mri"], ada["mri"], bob["mri"]], topic=topic
    )
    old = await control.post_message(chat["id"], sender=ada["mri"], content="<p>before</p>")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(mx, reg, control, me["mri"])
    room = await mx.wait_for_invite(lambda inv: inv.name == topic)
    await mx.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    return Setup(reg, control, mx, bridge, me, ada, bob, chat["id"], room, old["id"])


async def _raw(mx, room: str, event_id: str) -> dict[str, Any]:
    """The event as the homeserver serves it."""
    path = f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    return await mx.client.api.request("GET", path)


async def _teams_says(s: Setup, user: dict[str, Any], content: str, **extra: Any):
    """Post as a Teams user; return (message id, the Matrix event it became)."""
    posted = await s.control.post_message(s.chat, sender=user["mri"], content=content, **extra)
    puppet = s.puppet(user)
    evt = await s.mx.wait_for_event(
        s.room,
        lambda e: (
            e.type == EventType.ROOM_MESSAGE
            and e.sender == puppet
            and e.timestamp == int(posted["id"])
        ),
    )
    return posted["id"], evt


async def _requests(s: Setup, method: str, path: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` recorded requests (since the last clear) and decode their bodies."""

    async def found():
        reqs = await s.control.requests(path_contains=path, method=method)
        return reqs if len(reqs) >= count else None

    reqs = await wait_for(found)
    for req in reqs:
        req["json"] = json.loads(req["body"]) if req["body"] else None
    return reqs


async def _matrix_sends(s: Setup, content: dict[str, Any], event_type: str = "m.room.message"):
    await s.control.clear_requests()
    return await s.mx.client.send_message_event(s.room, EventType.find(event_type), content)


async def _teams_message(s: Setup, message_id: str) -> dict[str, Any]:
    messages = await s.control.list_messages(s.chat)
    return next(m for m in messages if m["id"] == message_id)


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _mentions(content: dict[str, Any]) -> list[str]:
    return content["m.mentions"]["user_ids"]


@pytest.mark.parametrize("backend", ["pg"])
async def test_text_mentions_replies_edits_deletes_both_ways(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    s = await _setup(backend, synapse, bridge_factory, control, matrix_user, "Fidelity")
    ada_p, bob_p = s.puppet(s.ada), s.puppet(s.bob)
    fake_teams.options.numbers_as_strings = "always"

    # 1. Formatting, Teams -> Matrix: the Matrix HTML subset plus a plain body.
    rich_id, rich = await _teams_says(
        s,
        s.ada,
        "<p><b>bold</b> <i>italic</i> <u>under</u> <s>struck</s> <code>x=1</code> "
        '<a href="https://example.org">link</a></p><ol><li>one<ul><li>nested</li></ul></li>'
        "</ol><h2>Head</h2><blockquote>quoted</blockquote><pre>print(1)</pre><p>emoji "
        '<span class="animated-emoticon-20-smile" title="Smiley" type="(smile)"><img '
        'itemid="smile" itemscope="" itemtype="http://schema.skype.com/Emoji" src="https://'
        'statics.teams.cdn.office.net/evergreen-assets/skype/v2/smile/20.png" alt="🙂" '
        'style="width:20px; height:20px"></span><script>alert(1)</script></p>',
    )
    raw = await _raw(matrix_user, s.room, rich.event_id)
    assert raw["content"] == {
        "msgtype": "m.text",
        "body": "bold italic under struck x=1 link (https://example.org)\n1. one\n   - nested"
        "\nHead\n> quoted\nprint(1)\nemoji 🙂",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p><strong>bold</strong> <em>italic</em> <u>under</u> <del>struck</del> "
        '<code>x=1</code> <a href="https://example.org">link</a></p><ol><li>one<ul><li>'
        "nested</li></ul></li></ol><h2>Head</h2><blockquote>quoted</blockquote><pre><code>"
        "print(1)</code></pre><p>emoji 🙂</p>",
        "m.mentions": {"user_ids": []},
    }

    # 1. Formatting, Matrix -> Teams: Teams HTML (code blocks in Teams' own markup);
    # plain text is escaped.
    await _matrix_sends(
        s,
        {
            "msgtype": "m.text",
            "body": "b i",
            "format": "org.matrix.custom.html",
            "formatted_body": "<strong>b</strong> <em>i</em> <del>s</del> <code>c</code><ul><li>"
            'x<ol><li>y</li></ol></li></ul><pre><code class="language-python">a = 1</code></pre>',
        },
    )
    (send,) = await _requests(s, "POST", f"{s.chat}/messages")
    html = send["json"]["content"]
    assert html.startswith(
        "<p><strong>b</strong> <em>i</em> <s>s</s> <code>c</code></p><ul><li>x<ol><li>y</li>"
        '</ol></li></ul><p itemtype="http://schema.skype.com/CodeBlockEditor" '
    )
    assert re.search(r'<pre class="language-python" itemid="[^"]+"><code>a = 1</code></pre>$', html)
    assert send["json"]["messagetype"] == "RichText/Html"
    await _matrix_sends(s, {"msgtype": "m.text", "body": "a < b & **c**"})
    (send,) = await _requests(s, "POST", f"{s.chat}/messages")
    assert send["json"]["content"] == "<p>a &lt; b &amp; **c**</p>"
    assert send["json"]["properties"] == {}

    # 2. Mentions, Teams -> Matrix: spans split per word (item ids as strings) merge into
    # one pill; the logged-in user is pilled with their own Matrix ID; legacy <at>.
    _, hi = await _teams_says(
        s,
        s.ada,
        "<p>Hi {mention:0}, ping {mention:1}</p>",
        mentions=[{"mri": s.bob["mri"], "split": True}, {"mri": s.me["mri"], "split": False}],
    )
    raw = await _raw(matrix_user, s.room, hi.event_id)
    assert raw["content"]["body"] == "Hi Bob Babbage, ping Grace Hopper"
    assert raw["content"]["formatted_body"] == (
        f'<p>Hi <a href="https://matrix.to/#/{bob_p}">Bob Babbage</a>, ping '
        f'<a href="https://matrix.to/#/{matrix_user.user_id}">Grace Hopper</a></p>'
    )
    assert _mentions(raw["content"]) == [bob_p, matrix_user.user_id]
    _, legacy = await _teams_says(s, s.bob, f'<p>Yo <at id="{s.ada["mri"]}">Ada</at></p>')
    raw = await _raw(matrix_user, s.room, legacy.event_id)
    assert raw["content"]["formatted_body"] == (
        f'<p>Yo <a href="https://matrix.to/#/{ada_p}">Ada Lovelace</a></p>'
    )
    assert _mentions(raw["content"]) == [ada_p]

    # 2. Mentions, Matrix -> Teams: a pill listed in m.mentions becomes a mention span and
    # an entry of properties.mentions (a JSON string); a pill left out of it stays text.
    await _matrix_sends(
        s,
        {
            "msgtype": "m.text",
            "body": "Hi Ada Lovelace (Teams) and Bob",
            "format": "org.matrix.custom.html",
            "formatted_body": f'Hi <a href="https://matrix.to/#/{ada_p}">Ada Lovelace (Teams)'
            f'</a> and <a href="https://matrix.to/#/{bob_p}">Bob</a>',
            "m.mentions": {"user_ids": [ada_p]},
        },
    )
    (send,) = await _requests(s, "POST", f"{s.chat}/messages")
    assert send["json"]["content"] == (
        f'<p>Hi <span itemscope="" itemtype="{MENTION}" itemid="0">Ada Lovelace</span> and Bob</p>'
    )
    assert json.loads(send["json"]["properties"]["mentions"]) == [
        {
            "@type": MENTION,
            "itemid": 0,
            "mri": s.ada["mri"],
            "mentionType": "person",
            "displayName": "Ada Lovelace",
        }
    ]

    # 3. Replies, Teams -> Matrix: the quote block is removed and the reply points at the
    # quoted message's event.
    quote_html = (
        f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{rich_id}"><strong '
        f'itemprop="mri" itemid="{s.ada["mri"]}">Ada Lovelace</strong><span itemprop="time" '
        f'itemid="{rich_id}"></span><p itemprop="preview">bold italic under</p></blockquote>'
    )
    _, reply = await _teams_says(s, s.bob, quote_html + "<p>my answer</p>")
    raw = await _raw(matrix_user, s.room, reply.event_id)
    assert raw["content"]["body"] == "my answer"
    assert raw["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": rich.event_id}}

    # 3. Replies, Matrix -> Teams: the Teams quote block (author, time, preview) plus
    # properties.qtdMsgs; a client's reply fallback is not sent.
    agreed = await _matrix_sends(
        s,
        {
            "msgtype": "m.text",
            "body": f"> <{ada_p}> Hi Bob Babbage\n\nagreed",
            "m.relates_to": {"m.in_reply_to": {"event_id": hi.event_id}},
        },
    )
    (send,) = await _requests(s, "POST", f"{s.chat}/messages")
    hi_id = str(hi.timestamp)
    quote_block = (
        f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{hi_id}"><strong itemprop="mri" '
        f'itemid="{s.ada["mri"]}">Ada Lovelace</strong><span itemprop="time" itemid="{hi_id}">'
        '</span><p itemprop="preview">Hi Bob Babbage, ping Grace Hopper</p></blockquote>'
    )
    assert send["json"]["content"] == quote_block + "<p>agreed</p>"
    qtd_msgs = [{"messageId": hi_id, "sender": s.ada["mri"], "time": int(hi_id)}]
    assert json.loads(send["json"]["properties"]["qtdMsgs"]) == qtd_msgs
    # An edit of the reply keeps its quote; so does an edit that names the previous edit
    # rather than the message (as some clients send).
    agreed_id = (await wait_for(lambda: _own_message(s, "agreed")))["id"]
    previous = agreed
    for text in ("agreed!", "agreed!!"):
        previous = await _matrix_sends(
            s,
            {
                "msgtype": "m.text",
                "body": f"* {text}",
                "m.new_content": {"msgtype": "m.text", "body": text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": previous},
            },
        )
        (put,) = await _requests(s, "PUT", f"/messages/{agreed_id}")
        assert put["json"]["content"] == f"{quote_block}<p>{text}</p>"
        assert json.loads(put["json"]["properties"]["qtdMsgs"]) == qtd_msgs
    await s.control.clear_requests()

    # 4. Edits, Teams -> Matrix: m.replace from the puppet; an edit of the edit; neither a
    # reaction-only update nor an older version makes another.
    fake_teams.options.edit_markers = "edittime"
    await s.control.edit_message(s.chat, rich_id, s.ada["mri"], "<p>first <b>edit</b></p>")

    def replaces(e) -> bool:
        relates = getattr(e.content, "relates_to", None)
        return bool(relates) and _value(relates.rel_type) == "m.replace"

    edit1 = await matrix_user.wait_for_event(s.room, lambda e: replaces(e) and e.sender == ada_p)
    raw = await _raw(matrix_user, s.room, edit1.event_id)
    assert raw["content"] == {
        "msgtype": "m.text",
        "body": "* first edit",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p>* first <strong>edit</strong></p>",
        "m.new_content": {
            "msgtype": "m.text",
            "body": "first edit",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p>first <strong>edit</strong></p>",
            "m.mentions": {"user_ids": []},
        },
        "m.mentions": {"user_ids": []},
        "m.relates_to": {"rel_type": "m.replace", "event_id": rich.event_id},
    }
    stored = await _teams_message(s, rich_id)
    old_edit = stored["properties"]["edittime"]
    fake_teams.options.edit_markers = "skypeeditedid"
    await s.control.edit_message(s.chat, rich_id, s.ada["mri"], "<p>second edit</p>")
    edit2 = await matrix_user.wait_for_event(
        s.room, lambda e: replaces(e) and e.sender == ada_p, after=edit1.event_id
    )
    raw = await _raw(matrix_user, s.room, edit2.event_id)
    assert raw["content"]["m.new_content"]["body"] == "second edit"
    assert raw["content"]["m.relates_to"]["event_id"] == rich.event_id
    await s.control.react(s.chat, rich_id, s.bob["mri"], "like")
    await s.control.patch_message(
        s.chat, rich_id, content="<p>stale</p>", properties={"edittime": str(int(old_edit) - 1)}
    )
    await matrix_user.wait_for_event(
        s.room, lambda e: e.type == EventType.REACTION and e.sender == bob_p
    )

    # 4. An edit of a message from before the bridge knew the chat is ignored (counted
    # below), as mautrix bridges do; so is a Matrix edit of an event Teams never got.
    await s.control.edit_message(s.chat, s.old_id, s.ada["mri"], "<p>before, edited</p>")
    command = await matrix_user.send_text(s.room, "!teams ping")
    await matrix_user.edit_text(s.room, command, "!teams pong")

    # 4. Edits, Matrix -> Teams: PUT of the message with the new content; an edit of the
    # edit too; the echo comes back as nothing.
    sent_id = await matrix_user.send_text(s.room, "tpyo here")
    teams_id = (await wait_for(lambda: _own_message(s, "tpyo here")))["id"]
    assert await s.control.requests(method="PUT") == []  # the command's edit went nowhere
    await s.control.clear_requests()
    await matrix_user.edit_text(s.room, sent_id, "typo here")
    (put,) = await _requests(s, "PUT", f"/messages/{teams_id}")
    assert put["json"]["content"] == "<p>typo here</p>"
    assert put["json"]["messagetype"] == "RichText/Html"
    await s.control.clear_requests()
    await matrix_user.edit_text(s.room, sent_id, "typo fixed", html="typo <b>fixed</b>")
    (put,) = await _requests(s, "PUT", f"/messages/{teams_id}")
    assert put["json"]["content"] == "<p>typo <b>fixed</b></p>"
    await wait_for(lambda: _teams_content_is(s, teams_id, "<p>typo <b>fixed</b></p>"))

    # 5. Deletes, Teams -> Matrix: every variant of a soft delete redacts, as the puppet.
    for marker in ("deletetime", "deletionTime", "content_only"):
        fake_teams.options.delete_markers = marker
        gone_id, gone = await _teams_says(s, s.bob, f"<p>delete me ({marker})</p>")
        await s.control.delete_message(s.chat, gone_id, s.bob["mri"])
        redaction = await matrix_user.wait_for_event(
            s.room, lambda e, g=gone: e.type == EventType.ROOM_REDACTION and e.redacts == g.event_id
        )
        assert redaction.sender == bob_p

    # 5. Deletes, Matrix -> Teams: a redaction soft-deletes the Teams message.
    await s.control.clear_requests()
    await matrix_user.redact(s.room, sent_id)
    (delete,) = await _requests(s, "DELETE", f"/messages/{teams_id}")
    assert delete["query"] == {"behavior": "softDelete"}
    await wait_for(lambda: _teams_content_is(s, teams_id, ""))

    # 4, 5. A message sent from Matrix, then edited and deleted in a Teams client. The
    # ghost cannot replace the user's event, so the edit is told in a notice replying to it,
    # from the user's own ghost (which bridges what they write in Teams); the deletion is
    # a redaction by the bridge bot.
    own_puppet = s.puppet(s.me)
    mine = await matrix_user.send_text(s.room, "said in Matrix")
    mine_id = (await wait_for(lambda: _own_message(s, "said in Matrix")))["id"]
    # A reaction in Teams is an update that is not an edit: it adds the reaction, no notice
    # (its echo stored no version to compare with: only Teams' edit mark tells an edit).
    await s.control.react(s.chat, mine_id, s.bob["mri"], "like")
    await matrix_user.wait_for_event(
        s.room,
        lambda e: (
            e.type == EventType.REACTION
            and e.sender == bob_p
            and e.content.relates_to.event_id == mine
        ),
    )
    await s.control.edit_message(s.chat, mine_id, s.me["mri"], "<p>said in <b>Teams</b></p>")
    told = await matrix_user.wait_for_event(
        s.room, lambda e: e.type == EventType.ROOM_MESSAGE and e.sender == own_puppet
    )
    raw = await _raw(matrix_user, s.room, told.event_id)
    assert raw["content"] == {
        "msgtype": "m.notice",
        "body": "Edited in Teams: said in Teams",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p><em>Edited in Teams:</em></p><p>said in <strong>Teams</strong></p>",
        "m.mentions": {"user_ids": []},
        "m.relates_to": {"m.in_reply_to": {"event_id": mine}},
    }
    await s.control.delete_message(s.chat, mine_id, s.me["mri"])
    gone = await matrix_user.wait_for_event(
        s.room, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == mine
    )
    assert gone.sender == s.reg.bot_mxid

    # Nothing came back: no edit or redaction by a puppet of our own messages (only the
    # notice above), and the stale version and the reaction-only update made no further
    # edit.
    marker_id, _ = await _teams_says(s, s.ada, "<p>the end</p>")
    events = matrix_user.timeline[s.room]
    own = [e for e in events if e.sender == own_puppet and e.type != EventType.ROOM_MEMBER]
    assert own == [told]
    assert len([e for e in events if replaces(e) and e.sender == ada_p]) == 2
    redactions = [e for e in events if e.type == EventType.ROOM_REDACTION]
    assert [e.sender for e in redactions if e.redacts == sent_id] == [matrix_user.user_id]
    await s.bridge.astop(timeout=STOP_TIMEOUT)


async def _own_message(s: Setup, text: str) -> dict[str, Any] | None:
    for message in await s.control.list_messages(s.chat):
        if message.get("from", "").endswith(s.me["mri"]) and text in message.get("content", ""):
            return message
    return None


async def _teams_content_is(s: Setup, message_id: str, content: str) -> bool:
    return (await _teams_message(s, message_id))["content"] == content


def _reactions(mx, room: str, sender: str) -> list[Any]:
    return [e for e in mx.timeline[room] if e.type == EventType.REACTION and e.sender == sender]


@pytest.mark.parametrize("backend", ["pg"])
async def test_reactions_typing_and_receipts_both_ways(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    s = await _setup(backend, synapse, bridge_factory, control, matrix_user, "Emoji")
    ada_p, bob_p = s.puppet(s.ada), s.puppet(s.bob)
    fake_teams.options.numbers_as_strings = "always"
    msg_id, msg = await _teams_says(s, s.ada, "<p>react to me</p>")

    # 6. Reactions, Teams -> Matrix: one m.reaction per user and key, from their puppet; a
    # history of repeated reactions counts once; a removal redacts; quick-reaction names
    # and <hex>_<name> keys become emoji.
    async def reaction_from(puppet: str, key: str):
        return await matrix_user.wait_for_event(
            s.room,
            lambda e: (
                e.type == EventType.REACTION
                and e.sender == puppet
                and e.content.relates_to.key == key
            ),
        )

    await s.control.react(s.chat, msg_id, s.ada["mri"], "like")
    like = await reaction_from(ada_p, "👍")
    raw = await _raw(matrix_user, s.room, like.event_id)
    assert raw["content"] == {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": msg.event_id, "key": "👍"}
    }
    await s.control.react(s.chat, msg_id, s.bob["mri"], "heart", history=True)
    await s.control.react(s.chat, msg_id, s.bob["mri"], "heart", history=True)
    await s.control.react(s.chat, msg_id, s.bob["mri"], "1f6a5_horizontaltrafficlight")
    await reaction_from(bob_p, "🚥")
    assert [e.content.relates_to.key for e in _reactions(matrix_user, s.room, bob_p)] == [
        "❤️",
        "🚥",
    ]
    await s.control.react(s.chat, msg_id, s.ada["mri"], "like", remove=True)
    redaction = await matrix_user.wait_for_event(
        s.room, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == like.event_id
    )
    assert redaction.sender == ada_p

    # 6. Reactions, Matrix -> Teams: PUT …/properties?name=emotions with the Teams key,
    # DELETE on redaction; the echoes are not bridged back.
    surprised = await _matrix_sends(
        s,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": msg.event_id, "key": "😮"}},
        "m.reaction",
    )
    (put,) = await _requests(s, "PUT", f"/messages/{msg_id}/properties")
    assert put["query"] == {"name": "emotions"}
    assert set(put["json"]) == {"emotions"}
    assert put["json"]["emotions"]["key"] == "surprised"
    assert isinstance(put["json"]["emotions"]["value"], int)
    await matrix_user.react(s.room, msg.event_id, "🦄")
    (_, put) = await _requests(s, "PUT", f"/messages/{msg_id}/properties", count=2)
    assert put["json"]["emotions"]["key"] == "1f984_unicornface"
    await s.control.clear_requests()
    await matrix_user.redact(s.room, surprised)
    (delete,) = await _requests(s, "DELETE", f"/messages/{msg_id}/properties")
    assert delete["query"] == {"name": "emotions"}
    assert delete["json"] == {"emotions": {"key": "surprised"}}

    async def teams_reactions() -> dict[str, list[str]]:
        emotions = (await _teams_message(s, msg_id))["properties"]["emotions"]
        return {e["key"]: [u["mri"] for u in e["users"]] for e in emotions if e["users"]}

    await wait_for(
        lambda: _eq(
            teams_reactions(),
            {
                "heart": [s.bob["mri"], s.bob["mri"]],
                "1f6a5_horizontaltrafficlight": [s.bob["mri"]],
                "1f984_unicornface": [s.me["mri"]],
            },
        )
    )

    # 7. Typing, Teams -> Matrix: the puppet types (with a timeout).
    await s.control.typing(s.chat, s.ada["mri"])
    await matrix_user.wait_for_ephemeral(
        s.room,
        lambda e: e.type == EventType.TYPING and ada_p in e.content.user_ids,
    )

    # 7. Typing, Matrix -> Teams: Control/Typing, at most once per 20 s.
    await s.control.clear_requests()
    await matrix_user.client.set_typing(s.room, timeout=30_000)
    (typing,) = await _requests(s, "POST", f"{s.chat}/messages")
    assert typing["json"] == {
        "content": "",
        "contenttype": "Application/Message",
        "messagetype": "Control/Typing",
    }
    await matrix_user.client.set_typing(s.room, timeout=0)
    await matrix_user.client.set_typing(s.room, timeout=30_000)

    # 8. Read receipts, Teams -> Matrix: the puppet's receipt on the message read.
    now = int(time.time() * 1000)
    await s.control.set_horizon(s.chat, s.bob["mri"], f"{msg_id};{now};{msg_id}")
    await matrix_user.wait_for_ephemeral(
        s.room,
        lambda e: (
            e.type == EventType.RECEIPT
            and bob_p in (e.content.get(msg.event_id) or {}).get(ReceiptType.READ, {})
        ),
    )

    # 8. Read receipts, Matrix -> Teams: the user's receipt sets the consumption horizon.
    await matrix_user.client.send_receipt(s.room, msg.event_id)
    (horizon,) = await _requests(s, "PUT", f"{s.chat}/properties")
    assert horizon["query"] == {"name": "consumptionhorizon"}
    first, when, last = horizon["json"]["consumptionhorizon"].split(";")
    assert first == last == msg_id and abs(int(when) - time.time() * 1000) < 60_000
    typings = await s.control.requests(path_contains=f"{s.chat}/messages", method="POST")
    assert len(typings) == 1  # the second typing notice was throttled

    # Reactions are stored: after a restart, a new reaction-only update adds exactly the
    # new reaction.
    await s.bridge.astop(timeout=STOP_TIMEOUT)
    await s.bridge.astart()
    await s.control.wait_for_registration(s.me["mri"], timeout=60)
    await s.control.react(s.chat, msg_id, s.bob["mri"], "laugh")
    await reaction_from(bob_p, "😆")
    _, end = await _teams_says(s, s.ada, "<p>done</p>")
    assert [e.content.relates_to.key for e in _reactions(matrix_user, s.room, bob_p)] == [
        "❤️",
        "🚥",
        "😆",
    ]
    assert len(_reactions(matrix_user, s.room, ada_p)) == 1
    assert _reactions(matrix_user, s.room, s.puppet(s.me)) == []
    await s.bridge.astop(timeout=STOP_TIMEOUT)


async def _eq(value, expected) -> bool:
    return (await value) == expected


def _membership(puppet: str, membership: str):
    def check(e) -> bool:
        return (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == puppet
            and _value(e.content.membership) == membership
        )

    return check


def _is_notice(e) -> bool:
    return e.type == EventType.ROOM_MESSAGE and _value(e.content.msgtype) == "m.notice"


def _notice_from(sender: str, body: str):
    def check(e) -> bool:
        return (
            e.type == EventType.ROOM_MESSAGE
            and e.sender == sender
            and _value(e.content.msgtype) == "m.notice"
            and e.content.body == body
        )

    return check


@pytest.mark.parametrize("backend", ["lite"])
async def test_membership_topics_calls_and_names(
    backend, synapse, bridge_factory, control, fake_teams, matrix_client_factory
):
    mx = await matrix_client_factory()
    s = await _setup(backend, synapse, bridge_factory, control, mx, "Roster")
    ada_p, bob_p = s.puppet(s.ada), s.puppet(s.bob)
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    erin = await control.create_user(display_name="Erin Noether", kind="work")
    carol_p, erin_p = s.puppet(carol), s.puppet(erin)

    # 9. Membership: an XML AddMember with two targets, DeleteMember; then the JSON
    # MemberLeft / MemberJoined forms. Puppets join with the roster's names.
    await control.add_members(s.chat, [carol["mri"], erin["mri"]], by=s.ada["mri"])
    await mx.wait_for_event(s.room, _membership(carol_p, "join"))
    await mx.wait_for_event(s.room, _membership(erin_p, "join"))
    assert (await mx.client.get_profile(carol_p)).displayname == "Carol Shaw (Teams)"
    await control.remove_member(s.chat, carol["mri"], by=s.ada["mri"])
    await mx.wait_for_event(s.room, _membership(carol_p, "leave"))
    fake_teams.options.thread_activity_format = "json"
    await control.remove_member(s.chat, erin["mri"])
    await mx.wait_for_event(s.room, _membership(erin_p, "leave"))
    left = next(e for e in mx.timeline[s.room] if _membership(erin_p, "leave")(e))
    await control.add_member(s.chat, carol["mri"], by=s.ada["mri"])
    await mx.wait_for_event(s.room, _membership(carol_p, "join"), after=left.event_id)

    # 9. A user of this bridge added in Teams is invited with their own Matrix account.
    dave_mx = await matrix_client_factory()
    dave = await control.create_user(display_name="Dave Hilbert", kind="work")
    await login_through_bot(dave_mx, s.reg, control, dave["mri"])
    await control.add_member(s.chat, dave["mri"], by=s.me["mri"])
    await dave_mx.wait_for_invite(lambda inv: inv.room_id == s.room)

    # 9. Topics: TopicUpdate (XML) and SpaceTopicUpdated (JSON) rename the room.
    def named(name: str):
        return lambda e: e.type == EventType.ROOM_NAME and e.content.name == name

    fake_teams.options.thread_activity_format = "xml"
    await control.set_topic(s.chat, "Renamed in Teams", by=s.ada["mri"])
    await mx.wait_for_event(s.room, named("Renamed in Teams"))
    fake_teams.options.thread_activity_format = "json"
    await control.set_topic(s.chat, "Renamed again", by=s.bob["mri"])
    await mx.wait_for_event(s.room, named("Renamed again"))

    # 9. A room rename by the user renames the Teams chat (the echo changes nothing): room
    # members may rename a group portal, as anyone in the Teams chat may.
    levels = await mx.client.get_state_event(s.room, EventType.ROOM_POWER_LEVELS)
    assert levels.get_user_level(mx.user_id) == 1  # a member: above ghosts, not the bridge
    assert levels.kick == 1
    assert levels.get_event_level(EventType.ROOM_NAME) == 0
    assert levels.get_event_level(EventType.ROOM_TOPIC) == 50
    await control.clear_requests()
    await mx.client.send_state_event(s.room, EventType.ROOM_NAME, {"name": "Named in Matrix"})
    (put,) = await _requests(s, "PUT", f"/threads/{s.chat}/properties")
    assert put["query"] == {"name": "topic"}
    assert put["json"] == {"topic": "Named in Matrix"}
    await wait_for(lambda: _chat_topic_is(control, s.chat, "Named in Matrix"))

    # 9. Calls: Event/Call in both shapes and call-log entries become notices.
    await control.post_call(s.chat, "started", by=s.ada["mri"])
    await mx.wait_for_event(s.room, _notice_from(ada_p, "Call started"))
    await control.post_call(
        s.chat, "ended", [s.ada["mri"], s.me["mri"]], duration=63, by=s.ada["mri"]
    )
    await mx.wait_for_event(s.room, _notice_from(ada_p, "Call ended, 1 min 3 s"))
    await control.post_call(s.chat, "ended", duration=5, by=s.bob["mri"], ended_tag=True)
    await mx.wait_for_event(s.room, _notice_from(bob_p, "Call ended, 5 s"))
    await control.post_call(s.chat, "missed", by=s.bob["mri"])
    await mx.wait_for_event(s.room, _notice_from(bob_p, "Missed call"))
    await control.post_call_log(
        s.me["mri"], originator=s.ada["mri"], duration=125, thread_id=s.chat, call_id="c-1"
    )
    logged = await mx.wait_for_event(s.room, _notice_from(ada_p, "Call ended, 2 min 5 s"))
    await control.post_call_log(
        s.me["mri"],
        originator=s.bob["mri"],
        state="missed",
        thread_id=s.chat,
        call_id="c-2",
        as_string=False,
    )
    await mx.wait_for_event(s.room, _notice_from(bob_p, "Missed call"), after=logged.event_id)

    # 9. One notice per call: an Event/Call and a call-log entry for the same call, in
    # either order, are told once (how it started is another notice).
    await control.post_call(s.chat, "started", by=s.ada["mri"], call_id="c-3")
    await control.post_call(s.chat, "ended", duration=7, by=s.ada["mri"], call_id="c-3")
    await control.post_call_log(
        s.me["mri"], originator=s.ada["mri"], duration=7, thread_id=s.chat, call_id="c-3"
    )
    await control.post_call_log(
        s.me["mri"], originator=s.bob["mri"], duration=9, thread_id=s.chat, call_id="c-4"
    )
    await control.post_call(s.chat, "ended", duration=9, by=s.bob["mri"], call_id="c-4")
    _, after_calls = await _teams_says(s, s.ada, "<p>after the calls</p>")
    seen = [e.content.body for e in mx.timeline[s.room] if _is_notice(e)]
    assert seen[-3:] == ["Call started", "Call ended, 7 s", "Call ended, 9 s"]
    assert seen.count("Call ended, 7 s") == seen.count("Call ended, 9 s") == 1

    # 9. Unknown message types: a short notice, never silence.
    await control.post_message(s.chat, sender=s.ada["mri"], content="x", messagetype="Signal/X")
    await mx.wait_for_event(s.room, _notice_from(ada_p, "Unsupported Teams message type: Signal/X"))

    # 10. Display names: a profile name wins over the name on a message; when the profile
    # cannot be read, the message's imdisplayname (either spelling) is used.
    async def displayname(puppet: str, expected: str) -> None:
        async def check() -> bool:
            return (await mx.client.get_profile(puppet)).displayname == expected

        await wait_for(check)

    _, bobby = await _teams_says(s, s.bob, "<p>call me Bobby</p>", imdisplayname="Bobby")
    assert (await mx.client.get_profile(bob_p)).displayname == "Bob Babbage (Teams)"
    # Only the lookup of Ada alone fails (the bridge posts a compact JSON list of MRIs):
    # a lookup of anyone else, or of a roster naming her, must not use the fault up.
    only_ada = json.dumps([s.ada["mri"]], separators=(",", ":"))
    await control.add_fault(
        "fetchShortProfile", status=403, count=1, method="POST", body_contains=only_ada
    )
    await _teams_says(s, s.ada, "<p>new name</p>", imdisplayname="Ada Byron")
    await displayname(ada_p, "Ada Byron (Teams)")
    await control.clear_faults()
    await _teams_says(
        s,
        s.ada,
        "<p>newer name</p>",
        wire={"imdisplayname": None, "imDisplayName": "Countess Lovelace"},
    )
    await displayname(ada_p, "Countess Lovelace (Teams)")

    # Nothing came back from the rename: the room was named twice from Teams, each time
    # by the ghost of the person who renamed the chat, and once by the user.
    names = [e for e in mx.timeline[s.room] if e.type == EventType.ROOM_NAME]
    assert [(e.sender, e.content.name) for e in names][-3:] == [
        (ada_p, "Renamed in Teams"),
        (bob_p, "Renamed again"),
        (mx.user_id, "Named in Matrix"),
    ]
    await s.bridge.astop(timeout=STOP_TIMEOUT)


# A picture is fetched again at most this often (hours): short enough for the test to wait
# it out a few times.
REFRESH_HOURS = 0.002  # 7.2 s
PNG_A = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5c5f2b50000000049454e44ae426082"
)
PNG_B = PNG_A + b"\x00" * 16  # trailing bytes: another file, still a PNG


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _avatar(mx, user_id: str) -> str | None:
    return (await mx.client.get_profile(user_id)).avatar_url or None


async def _ghost_media_count(mx, user_id: str) -> int:
    """How many files the ghost has uploaded to the media repository (admin API)."""
    path = f"/_synapse/admin/v1/users/{quote(user_id)}/media"
    return (await mx.client.api.request("GET", path))["total"]


async def _room_avatar(mx, room: str, after: str | None = None):
    """The next m.room.avatar event (after `after`)."""
    return await mx.wait_for_event(room, lambda e: e.type == EventType.ROOM_AVATAR, after=after)


async def _chat_picture(control, chat: str, by: str, data: bytes) -> None:
    obj = await control.ams_upload(by, data, conversation=chat, view="avatar")
    await control.set_chat_picture(chat, obj["id"], by=by)


async def test_pictures_become_avatars(
    backend, synapse, bridge_factory, control, fake_teams, matrix_client_factory
):
    mx = await matrix_client_factory(admin=True)
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    await control.set_picture(ada["mri"], PNG_A, "image/png")
    chat = await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Faces")
    await _chat_picture(control, chat["id"], me["mri"], PNG_B)
    await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    bridge = bridge_factory(overrides={"bridge.avatar_refresh_hours": REFRESH_HOURS})
    await bridge.astart()
    await login_through_bot(mx, reg, control, me["mri"])
    room = await mx.wait_for_invite(lambda inv: inv.name == "Faces")
    await mx.join(room)
    dm = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    await mx.join(dm)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_p, bob_p = puppet_mxid(reg, ada["mri"]), puppet_mxid(reg, bob["mri"])

    # A picture becomes the ghost's avatar: the homeserver serves exactly those bytes, and
    # the ghost joined with it. No picture (404): no avatar.
    join = await mx.wait_for_event(room, _membership(ada_p, "join"))
    first = await _avatar(mx, ada_p)
    assert first and _sha(await mx.client.download_media(first)) == _sha(PNG_A)
    assert join.content.avatar_url == first
    assert await _avatar(mx, bob_p) is None

    # A 1:1 room looks like the other person: their name and, from the start, picture.
    dm_created = await _room_avatar(mx, dm)
    assert dm_created.content.url == first

    # The chat's picture is the room's avatar from the start; a new one replaces it, a
    # removed one clears it.
    created = await _room_avatar(mx, room)
    assert _sha(await mx.client.download_media(created.content.url)) == _sha(PNG_B)
    await _chat_picture(control, chat["id"], ada["mri"], PNG_A)
    changed = await _room_avatar(mx, room, after=created.event_id)
    assert changed.sender == reg.bot_mxid
    assert _sha(await mx.client.download_media(changed.content.url)) == _sha(PNG_A)
    await control.set_chat_picture(chat["id"], None, by=bob["mri"])
    cleared = await _room_avatar(mx, room, after=changed.event_id)
    assert not cleared.content.url

    async def ada_says(text: str) -> None:
        await control.post_message(chat["id"], sender=ada["mri"], content=f"<p>{text}</p>")
        await mx.wait_for_message(room, body=text)

    async def fetch_times() -> list[float]:
        found = await control.requests(path_contains=f"/profilepicturev2/{ada['mri']}")
        return [r["time"] for r in found]

    async def fetches() -> int:
        return len(await fetch_times())

    async def after_refresh(text: str) -> None:
        """Let the refresh interval pass; then a message makes the bridge look again. The
        interval counts from the end of the last look, which a busy machine may delay: a
        message that came a little early is followed by another until one is late enough."""
        before = await fetches()
        await asyncio.sleep(REFRESH_HOURS * 3600)
        said = 0

        async def looked_again() -> bool:
            nonlocal said
            if await fetches() > before:
                return True
            said += 1
            await ada_says(f"{text} {said}")
            return False

        await wait_for(looked_again, interval=0.5)

    async def assert_fetches_spaced() -> None:
        """Never two looks within the interval (the clocks are the same machine's)."""
        times = await fetch_times()
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert all(gap >= REFRESH_HOURS * 3600 - 0.01 for gap in gaps), gaps

    # After the interval a message makes the bridge look again; messages within it fetch
    # nothing. An unchanged picture is not uploaded again (counted at the end).
    await after_refresh("later")
    await ada_says("again")
    await ada_says("and again")
    await assert_fetches_spaced()
    assert await _avatar(mx, ada_p) == first

    # A changed picture replaces the avatar.
    await control.set_picture(ada["mri"], PNG_B, "image/png")
    await after_refresh("new face")
    second = await wait_for(lambda: _changed(_avatar(mx, ada_p), first))
    assert _sha(await mx.client.download_media(second)) == _sha(PNG_B)
    # The 1:1 room follows, changed by Ada's ghost.
    dm_changed = await _room_avatar(mx, dm, after=dm_created.event_id)
    assert dm_changed.content.url == second and dm_changed.sender == ada_p

    # A removed picture clears it.
    await control.remove_picture(ada["mri"])
    await after_refresh("no face")
    await wait_for(lambda: _eq(_avatar(mx, ada_p), None))

    # Someone added in Teams joins with their picture.
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    await control.set_picture(carol["mri"], PNG_B, "image/png")
    await control.add_member(chat["id"], carol["mri"], by=ada["mri"])
    carol_join = await mx.wait_for_event(room, _membership(puppet_mxid(reg, carol["mri"]), "join"))
    assert _sha(await mx.client.download_media(carol_join.content.avatar_url)) == _sha(PNG_B)

    # Two uploads for Ada (the first picture and the changed one), however often it was
    # fetched; none for Bob.
    assert await fetches() >= 4
    await assert_fetches_spaced()
    assert await _ghost_media_count(mx, ada_p) == 2
    assert await _ghost_media_count(mx, bob_p) == 0

    # A room made before members could rename it gets that power on the next sync.
    levels = await mx.client.get_state_event(room, EventType.ROOM_POWER_LEVELS)
    assert levels.get_event_level(EventType.ROOM_NAME) == 0
    levels.events[EventType.ROOM_NAME] = 50
    path = f"/rooms/{quote(room)}/state/m.room.power_levels"
    downgrade = (await _as_bot(synapse, reg, "PUT", path, levels))["event_id"]
    # The bridge must have the downgrade before it stops (as it has the levels of a room an
    # older version made), not get it from the homeserver only after its start-up sync:
    # the homeserver sends in order, so a message sent after it reaching Teams says so.
    await mx.send_text(room, "levels sent")

    async def teams_has_it() -> bool:
        messages = await control.list_messages(chat["id"])
        return any("levels sent" in m.get("content", "") for m in messages)

    await wait_for(teams_has_it)
    await bridge.astop(timeout=STOP_TIMEOUT)
    await bridge.astart()
    fixed = await mx.wait_for_event(
        room,
        lambda e: (
            e.type == EventType.ROOM_POWER_LEVELS
            and e.content.get_event_level(EventType.ROOM_NAME) == 0
        ),
        after=downgrade,
    )
    assert fixed.sender == reg.bot_mxid
    await mx.client.send_state_event(room, EventType.ROOM_NAME, {"name": "Renamed by a member"})
    await wait_for(lambda: _chat_topic_is(control, chat["id"], "Renamed by a member"))
    await bridge.astop(timeout=STOP_TIMEOUT)


async def _as_bot(synapse, reg, method: str, path: str, content) -> dict[str, Any]:
    """A client-server request as the bridge bot (with the appservice's token)."""
    async with aiohttp.ClientSession() as http:
        async with http.request(
            method,
            f"{synapse.url}/_matrix/client/v3{path}",
            params={"user_id": reg.bot_mxid},
            headers={"Authorization": f"Bearer {reg.as_token}"},
            json=content.serialize(),
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _chat_topic_is(control, chat: str, topic: str) -> bool:
    return (await control.get_chat(chat))["topic"] == topic


async def _changed(value, old):
    new = await value
    return new if new and new != old else None
