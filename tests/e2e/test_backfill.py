"""History in new rooms: a login with 20 chats of 30+ messages each gets every room with its
recent history, in order, from the right ghosts at the Teams times, with edits as edited,
deletes left out, reactions, replies, files and channel threads; a bridge killed in the
middle goes on without doubling anything, and live messages come after the history."""

from __future__ import annotations

from collections import Counter
from typing import Any

from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

STOP_TIMEOUT = 5
PER_CHAT = 32
REPLY = "http://schema.skype.com/Reply"
AMS_IMAGE = "http://schema.skype.com/AMSImage"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _body(e) -> str | None:
    content = e.content
    return content.body if hasattr(content, "body") else None


async def _seed(control, chat: dict[str, Any], people: list[dict], tag: str) -> str:
    """PER_CHAT messages (and a few changes) in one chat, the first from ``people[0]``, who
    also reacts; returns the reacting person's MRI."""
    cid, channel = chat["id"], chat.get("kind") == "channel"
    ids: list[str] = []
    for n in range(PER_CHAT):
        who = people[n % len(people)]
        ids.append((await control.post_message(cid, who["mri"], f"<p>{tag} m{n:02d}</p>"))["id"])
    ada, bob = people[0], people[1]
    # An edit (the room shows the edited text), a delete (left out), a reaction.
    edited = f"<p>{tag} m03 edited</p>"
    await control.edit_message(cid, ids[3], people[3 % len(people)]["mri"], edited)
    await control.delete_message(cid, ids[4], people[4 % len(people)]["mri"])
    await control.react(cid, ids[5], ada["mri"], "heart")
    if channel:
        # A reply in the thread of m01.
        await control.post_message(cid, bob["mri"], f"<p>{tag} threaded</p>", thread_root=ids[1])
    else:
        quote = (
            f'<blockquote itemscope="" itemtype="{REPLY}" itemid="{ids[1]}"><strong '
            f'itemprop="mri" itemid="{people[1]["mri"]}">x</strong><span itemprop="time" '
            f'itemid="{ids[1]}"></span><p itemprop="preview">{tag} m01</p></blockquote>'
        )
        await control.post_message(cid, ada["mri"], f"{quote}<p>{tag} quoting</p>")
        obj = await control.ams_upload(
            ada["mri"], PNG, filename=f"{tag}.png", type="pish/image",
            content_type="image/png", conversation=cid,
        )  # fmt: skip
        img = (
            f'<img itemscope="image" src="{obj["views"]["imgo"]}" itemtype="{AMS_IMAGE}" '
            f'id="{obj["id"]}" itemid="{obj["id"]}" width="1" height="1">'
        )
        await control.post_message(cid, ada["mri"], f"<p>{img}</p>")
    return ada["mri"]


async def test_history_in_new_rooms_survives_restarts_and_goes_before_live_messages(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    # The chat with the oldest activity is left out of the start-up sync (20 chats); its
    # first live message makes its room, with its history before that message.
    late = await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Late")
    await _seed(control, late, [ada, bob, me], "late")
    chats: list[dict[str, Any]] = []
    for k in range(14):
        members = [me["mri"], ada["mri"], bob["mri"]] + ([carol["mri"]] if k % 2 else [])
        chats.append(await control.create_chat("group", members, f"Chat {k:02d}"))
    chats.append(await control.create_chat("one_to_one", [me["mri"], ada["mri"]]))
    chats.append(await control.create_chat("one_to_one", [me["mri"], bob["mri"]]))
    for team_name in ("Contoso", "Fabrikam"):
        team = await control.create_team(team_name, [ada["mri"], me["mri"], bob["mri"]], ["Ops"])
        for channel in team["channels"]:
            chats.append({**channel, "kind": "channel"})
    assert len(chats) == 20
    tags = [f"c{k:02d}" for k in range(len(chats))]
    reactors = []
    for chat, tag in zip(chats, tags, strict=True):
        if chat.get("kind") == "one_to_one":
            members = [m["mri"] for m in chat["members"]]
            peer = ada if ada["mri"] in members else bob
            people = [peer, me]
        else:
            people = [ada, bob, me]
        reactors.append(await _seed(control, chat, people, tag))

    overrides = {"bridge.backfill.initial_messages": 50, "bridge.initial_chat_sync": 20}
    bridge = bridge_factory(overrides=overrides)
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])

    # Killed once a few rooms are in (each room's invite comes after its history).
    await wait_for(_count_invites(mx, 3))
    bridge.kill()
    await bridge.astart()
    await wait_for(_count_invites(mx, 21), timeout=180)  # 20 portals and the bot's DM
    await mx.wait_for_notice(dm, contains="Your Teams chats are set up")
    await mx.wait_for_notice(dm, contains="History: 10 of")

    rooms = {}
    for room_id, invite in list(mx.invites.items()):
        if room_id != dm:
            await mx.join(room_id)
            rooms[room_id] = invite.name

    # A live message after the start goes after the history.
    first_room = next(r for r, name in rooms.items() if name == "Chat 00")
    await control.post_message(chats[0]["id"], ada["mri"], "<p>c00 live</p>")
    live = await mx.wait_for_message(first_room, body="c00 live")
    order = [e.event_id for e in mx.timeline[first_room]]
    last_history = max(order.index(e.event_id) for e in mx.messages(first_room) if e != live)
    assert order.index(live.event_id) > last_history

    # Every room: its history once each, in order, from the right senders at Teams times.
    messages_by_chat = {c["id"]: await control.list_messages(c["id"]) for c in chats}
    for room_id in rooms:
        bodies = [(_body(e), e) for e in mx.messages(room_id) if _body(e)]
        tag = next(
            (t for t in tags if any(b and b.startswith(f"{t} m00") for b, _ in bodies)), None
        )
        assert tag is not None, (rooms[room_id], [b for b, _ in bodies][:5])
        chat = chats[tags.index(tag)]
        ordinary = [(b, e) for b, e in bodies if b.startswith(f"{tag} m")]
        expected = [f"{tag} m{n:02d}" for n in range(PER_CHAT) if n != 4]
        expected[3] = f"{tag} m03 edited"
        got = [b for b, _ in ordinary if not b.startswith("* ")]
        assert got == expected, rooms[room_id]
        assert Counter(b for b, _ in bodies)[f"{tag} m00"] == 1
        teams = {m["content"]: m for m in messages_by_chat[chat["id"]]}
        first = teams[f"<p>{tag} m00</p>"]
        event0 = ordinary[0][1]
        assert event0.timestamp == int(first["id"])
        sender_mri = first["from"].rsplit("/", 1)[-1]
        assert event0.sender == puppet_mxid(reg, sender_mri)
        reactor = puppet_mxid(reg, reactors[tags.index(tag)])
        reactions = [
            e for e in mx.timeline[room_id] if e.type == EventType.REACTION and e.sender == reactor
        ]
        assert len(reactions) == 1 and reactions[0].content.relates_to.key == "❤️"
        if chat.get("kind") == "channel":
            (threaded,) = [e for b, e in bodies if b == f"{tag} threaded"]
            assert threaded.content.relates_to.rel_type.value == "m.thread"
        else:
            (quoting,) = [e for b, e in bodies if b == f"{tag} quoting"]
            assert quoting.content.get_reply_to() == ordinary[1][1].event_id
            images = [e for e in mx.messages(room_id) if _msgtype(e) == "m.image"]
            assert len(images) == 1

    # A chat whose room is made by a live message: its history first, then the message.
    await control.post_message(late["id"], bob["mri"], "<p>late live</p>")
    late_room = await mx.wait_for_invite(lambda inv: inv.name == "Late")
    await mx.join(late_room)
    live = await mx.wait_for_message(late_room, body="late live")
    late_bodies = [_body(e) for e in mx.messages(late_room)]
    assert late_bodies[0] == "late m00" and late_bodies[-1] == "late live"
    assert late_bodies.count("late m31") == 1 and "late m04" not in late_bodies
    assert live.event_id == mx.messages(late_room)[-1].event_id

    # `sync` makes the room of a chat nothing has happened in yet.
    quiet = await control.create_chat("group", [me["mri"], ada["mri"]], "Quiet")
    await mx.send_text(dm, "sync")
    await mx.wait_for_invite(lambda inv: inv.name == "Quiet")
    assert quiet["id"]

    # A second restart adds nothing to any room.
    counts = {r: len(mx.timeline[r]) for r in rooms}
    await bridge.astop(timeout=STOP_TIMEOUT)
    await bridge.astart()
    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(chats[0]["id"], ada["mri"], "<p>c00 after restart</p>")
    await mx.wait_for_message(first_room, body="c00 after restart")
    for room_id, count in counts.items():
        added = len(mx.timeline[room_id]) - count
        assert added == (1 if room_id == first_room else 0), rooms[room_id]
    await bridge.astop(timeout=STOP_TIMEOUT)


def _msgtype(e) -> str | None:
    msgtype = getattr(e.content, "msgtype", None)
    return getattr(msgtype, "value", msgtype)


def _count_invites(mx, n: int):
    async def enough() -> bool:
        return len(mx.invites) + len(mx.joined) >= n

    return enough
