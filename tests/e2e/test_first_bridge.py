"""The first working bridge, end to end: a Matrix user logs in through the bot against the
simulator, gets portals, and text crosses both ways through the real homeserver.

Runs once with the bridge on PostgreSQL and once on SQLite.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from mautrix.types import EventType, Format, Membership

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for


async def test_login_portals_and_text_both_ways(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    group = await control.create_chat(
        kind="group", members=[me["mri"], ada["mri"], bob["mri"]], topic="Analytical Engine"
    )
    await control.create_chat(kind="group", members=[me["mri"], ada["mri"], bob["mri"]])
    direct = await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    await control.post_message(group["id"], sender=ada["mri"], content="<p>before login</p>")

    bridge = bridge_factory()
    await bridge.astart()
    assert "Using uvloop for asyncio" in bridge.log_text()  # bridge.uvloop, on by default
    dm = await login_through_bot(matrix_user, reg, control, me["mri"])

    # Portals: the named group, the unnamed group (named after its members), the 1:1.
    invites = {}
    for _ in range(3):
        room_id = await matrix_user.wait_for_invite(lambda inv: inv.room_id not in invites)
        invites[room_id] = matrix_user.invites[room_id]
    by_name = {inv.name: room_id for room_id, inv in invites.items()}
    assert "Analytical Engine" in by_name
    # The bot said the invites would come, and when they all had.
    await matrix_user.wait_for_notice(dm, contains="Setting up 3 chats from Teams")
    await matrix_user.wait_for_notice(dm, contains="Your Teams chats are set up: 3 chats made.")
    assert "Ada Lovelace, Bob Babbage" in by_name
    group_room = by_name["Analytical Engine"]
    direct_room = by_name["Ada Lovelace"]
    assert invites[direct_room].is_direct
    await matrix_user.join(group_room)
    await matrix_user.join(direct_room)

    ada_puppet = puppet_mxid(reg, ada["mri"])
    bob_puppet = puppet_mxid(reg, bob["mri"])
    members = await matrix_user.members(group_room)
    assert members.get(ada_puppet) == "join"
    assert members.get(bob_puppet) == "join"
    # Each room was complete before the user was invited: every ghost had joined and the
    # name and bridge state were set.
    for room, ghosts in ((group_room, {ada_puppet, bob_puppet}), (direct_room, {ada_puppet})):
        before_invite = await _state_before_invite(matrix_user, room)
        joined = {key for typ, key in before_invite if typ == "m.room.member"}
        assert ghosts | {reg.bot_mxid} <= joined, (room, before_invite)
        assert any(typ == "m.bridge" for typ, _ in before_invite)
    assert ("m.room.name", "") in await _state_before_invite(matrix_user, group_room)
    profile = await matrix_user.client.get_profile(ada_puppet)
    assert profile.displayname == "Ada Lovelace (Teams)"

    # Teams -> Matrix, from the right puppet, with HTML and the Teams timestamp.
    posted = await control.post_message(
        group["id"], sender=ada["mri"], content="<p>Hello <b>Matrix</b> &amp; friends</p>"
    )
    evt = await matrix_user.wait_for_message(group_room, sender=ada_puppet, contains="Hello")
    assert evt.content.body == "Hello Matrix & friends"
    assert evt.content.format == Format.HTML
    assert "<strong>Matrix</strong>" in evt.content.formatted_body or (
        "<b>Matrix</b>" in evt.content.formatted_body
    )
    assert evt.timestamp == int(posted["id"])

    # 1:1 works too.
    await control.post_message(direct["id"], sender=ada["mri"], content="<p>psst</p>")
    await matrix_user.wait_for_message(direct_room, sender=ada_puppet, body="psst")

    # Matrix -> Teams: RichText/Html with a fresh numeric clientmessageid.
    await control.clear_requests()
    sent_id = await matrix_user.send_text(
        group_room, "Hi **Ada**", html="Hi <strong>Ada</strong> &lt;3"
    )

    async def teams_has_reply():
        messages = await control.list_messages(group["id"])
        return next((m for m in messages if m.get("from", "").endswith(me["mri"])), None)

    reply = await wait_for(teams_has_reply)
    assert reply["messagetype"] == "RichText/Html"
    assert "<strong>Ada</strong>" in reply["content"] or "<b>Ada</b>" in reply["content"]
    assert "&lt;3" in reply["content"]
    requests = await control.requests(path_contains=group["id"], method="POST")
    bodies = [json.loads(r["body"]) for r in requests if r["body"]]
    sends = [b for b in bodies if b.get("messagetype") == "RichText/Html"]
    assert len(sends) == 1
    assert sends[0]["contenttype"] == "text"
    assert re.fullmatch(r"\d{13,20}", sends[0]["clientmessageid"])
    assert reply["clientmessageid"] == sends[0]["clientmessageid"]
    # Its first attempt was stored with the event, so nothing was looked up in the chat
    # before the post (only a send that may have gone out already is).
    assert await control.requests(path_contains=f"{group['id']}/messages", method="GET") == []

    # The echo of our own message is not bridged back: a later message arrives, and the
    # room still holds exactly one copy of the reply (the user's own event).
    await control.post_message(group["id"], sender=ada["mri"], content="<p>after echo</p>")
    await matrix_user.wait_for_message(group_room, sender=ada_puppet, body="after echo")
    copies = [
        e
        for e in matrix_user.messages(group_room)
        if "Ada" in (e.content.body or "") and e.content.body.startswith("Hi")
    ]
    assert [e.event_id for e in copies] == [sent_id]

    # ping reports the login and the live connection.
    ping_id = await matrix_user.send_text(dm, "ping")
    pong = await matrix_user.wait_for_notice(dm, contains="logged in as", after=ping_id)
    assert "Grace Hopper" in pong.content.body and me["mri"] in pong.content.body
    assert "Real-time connection: connected" in pong.content.body

    # The login survives a restart of the bridge.
    await bridge.astop()
    await bridge.astart()

    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(group["id"], sender=ada["mri"], content="<p>after restart</p>")
    await matrix_user.wait_for_message(group_room, sender=ada_puppet, body="after restart")

    # logout forgets the login.
    logout_id = await matrix_user.send_text(dm, "logout")
    await matrix_user.wait_for_notice(dm, contains="Logged out", after=logout_id)
    ping_id = await matrix_user.send_text(dm, "ping")
    await matrix_user.wait_for_notice(dm, contains="not logged in", after=ping_id)

    async def disconnected():
        state = (await control.connections()).get(me["mri"], {})
        return not state.get("connections")

    await wait_for(disconnected)


async def test_chat_created_while_running_gets_a_room(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])

    await control.wait_for_registration(me["mri"], timeout=60)
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="New")
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>first!</p>")
    room_id = await matrix_user.wait_for_invite(lambda inv: inv.name == "New")
    await matrix_user.join(room_id)
    await matrix_user.wait_for_message(room_id, sender=puppet_mxid(reg, ada["mri"]), body="first!")


async def test_users_without_permission_are_refused(
    backend, synapse, bridge_factory, matrix_client_factory
):
    reg = synapse.appservices[backend]
    allowed = await matrix_client_factory()
    stranger = await matrix_client_factory()
    bridge = bridge_factory(permissions={allowed.user_id: "user"})
    await bridge.astart()
    dm = await stranger.create_dm(reg.bot_mxid)
    refusal = await stranger.wait_for_message(dm, sender=reg.bot_mxid)
    assert "permission" in refusal.content.body.lower() or "not allowed" in (
        refusal.content.body.lower()
    )

    await stranger.wait_for_event(
        dm,
        lambda e: (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == reg.bot_mxid
            and e.content.membership == Membership.LEAVE
        ),
    )

    # The allowed user is welcomed and may start a login.
    allowed_dm = await allowed.create_dm(reg.bot_mxid)
    await allowed.wait_for_notice(allowed_dm, contains="Teams bridge bot")
    await allowed.send_text(allowed_dm, "login")
    await allowed.wait_for_notice(allowed_dm, contains="enter the code")


async def _state_before_invite(matrix_user, room: str) -> list[tuple[str, str]]:
    """The (type, state key) of the state events (joins only, for members) the room had
    when the user was invited, read from the homeserver's own history of the room."""
    path = f"/_matrix/client/v3/rooms/{quote(room)}/messages"
    page = await matrix_user.client.api.request(
        "GET", path, query_params={"dir": "f", "limit": "200"}
    )
    seen: list[tuple[str, str]] = []
    for evt in page["chunk"]:
        if "state_key" not in evt:
            continue
        membership = evt["content"].get("membership")
        if evt["type"] == "m.room.member" and evt["state_key"] == matrix_user.user_id:
            assert membership == "invite", evt
            return seen
        if evt["type"] != "m.room.member" or membership == "join":
            seen.append((evt["type"], evt["state_key"]))
    raise AssertionError(f"no invite of the user in {room}")
