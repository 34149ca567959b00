"""Whose room a Teams chat is: two bridge users who share a 1:1 chat each get a room of
their own (named after the other person, marked as direct, fed by their own connection),
while a channel stays one room for both; and a channel's team survives a restart.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, recorded, wait_for

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5c5f2b50000000049454e44ae426082"
)
STOP_TIMEOUT = 5


def _bodies(mx, room: str, body: str) -> list[Any]:
    return [e for e in mx.messages(room) if getattr(e.content, "body", None) == body]


async def _bridge_state(mx, room: str, chat_id: str) -> dict[str, Any]:
    key = quote(f"net.teams://teams/{chat_id}", safe="")
    path = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.bridge/{key}"
    return await mx.client.api.request("GET", path)


@pytest.mark.parametrize("backend", ["pg"])
async def test_each_bridge_user_has_their_own_one_to_one_room(
    backend, synapse, bridge_factory, control, matrix_client_factory
):
    reg = synapse.appservices[backend]
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    await control.set_picture(ada["mri"], PNG, "image/png")
    await control.set_picture(bob["mri"], PNG, "image/png")
    dm = (await control.create_chat(kind="one_to_one", members=[ada["mri"], bob["mri"]]))["id"]
    team = await control.create_team("Contoso", [ada["mri"], bob["mri"]], ["Design"])
    chan = team["channels"][1]["id"]
    ada_p, bob_p = puppet_mxid(reg, ada["mri"]), puppet_mxid(reg, bob["mri"])

    bridge = bridge_factory()
    await bridge.astart()
    mx_ada = await matrix_client_factory()
    mx_bob = await matrix_client_factory()
    await login_through_bot(mx_ada, reg, control, ada["mri"])
    await login_through_bot(mx_bob, reg, control, bob["mri"])

    # Each has a room of the 1:1 chat: made by the other person's ghost, named after them,
    # marked as direct, without the other's Matrix account in it.
    room_a = await mx_ada.wait_for_invite(lambda i: i.is_direct and i.sender == bob_p, 60)
    room_b = await mx_bob.wait_for_invite(lambda i: i.is_direct and i.sender == ada_p, 60)
    assert room_a != room_b
    assert mx_ada.invites[room_a].name == "Bob Babbage"
    assert mx_bob.invites[room_b].name == "Ada Lovelace"
    # The channel is one room for both.
    chan_a = await mx_ada.wait_for_invite(lambda i: i.name == "Design (Contoso)", 60)
    chan_b = await mx_bob.wait_for_invite(lambda i: i.name == "Design (Contoso)", 60)
    assert chan_a == chan_b
    for mx, room in ((mx_ada, room_a), (mx_bob, room_b), (mx_ada, chan_a)):
        await mx.join(room)
    members_a = await mx_ada.members(room_a)
    members_b = await mx_bob.members(room_b)
    assert members_a.get(bob_p) == "join" and mx_bob.user_id not in members_a
    assert members_b.get(ada_p) == "join" and mx_ada.user_id not in members_b
    # Each room shows the other person: their name and their picture.
    for mx, room, other in ((mx_ada, room_a, bob_p), (mx_bob, room_b, ada_p)):
        picture = (await mx.client.get_profile(other)).avatar_url
        assert picture
        avatars = [e for e in await mx.room_state(room) if e.type == EventType.ROOM_AVATAR]
        assert [e.content.url for e in avatars] == [picture]
    await control.wait_for_registration(ada["mri"], timeout=60)
    await control.wait_for_registration(bob["mri"], timeout=60)

    # Teams -> Matrix: what either writes in a Teams client reaches both rooms, from the
    # writer's ghost.
    await control.post_message(dm, sender=bob["mri"], content="<p>from bob in teams</p>")
    await control.post_message(dm, sender=ada["mri"], content="<p>from ada in teams</p>")
    for mx, room in ((mx_ada, room_a), (mx_bob, room_b)):
        await mx.wait_for_message(room, sender=bob_p, body="from bob in teams")
        await mx.wait_for_message(room, sender=ada_p, body="from ada in teams")

    # Matrix -> Teams: each one's message reaches Teams once, as them, and the other's room
    # from their ghost; the echo in the sender's own room is recognised.
    await control.clear_requests()
    sent_a = await mx_ada.send_text(room_a, "from ada in matrix")
    await mx_bob.wait_for_message(room_b, sender=ada_p, body="from ada in matrix")
    sent_b = await mx_bob.send_text(room_b, "from bob in matrix")
    await mx_ada.wait_for_message(room_a, sender=bob_p, body="from bob in matrix")
    posts = await recorded(control, "POST", f"{dm}/messages", count=2)

    # A last message from Teams: everything before it has been bridged.
    await control.post_message(dm, sender=bob["mri"], content="<p>the end</p>")
    for mx, room in ((mx_ada, room_a), (mx_bob, room_b)):
        await mx.wait_for_message(room, sender=bob_p, body="the end")
    assert [e.event_id for e in _bodies(mx_ada, room_a, "from ada in matrix")] == [sent_a]
    assert [e.event_id for e in _bodies(mx_bob, room_b, "from bob in matrix")] == [sent_b]
    for mx, room in ((mx_ada, room_a), (mx_bob, room_b)):
        for body in ("from bob in teams", "from ada in teams", "the end"):
            assert len(_bodies(mx, room, body)) == 1, (room, body)
    assert len(_bodies(mx_bob, room_b, "from ada in matrix")) == 1
    assert len(_bodies(mx_ada, room_a, "from bob in matrix")) == 1
    sends = [p for p in posts if (p["json"] or {}).get("messagetype") == "RichText/Html"]
    assert len(sends) == 2
    in_teams = await control.list_messages(dm)
    for who, text in ((ada, "from ada in matrix"), (bob, "from bob in matrix")):
        copies = [m for m in in_teams if text in m.get("content", "")]
        assert len(copies) == 1 and copies[0]["from"].endswith(who["mri"]), copies

    # The channel's team is stored: after a restart that syncs no chats (as for a channel
    # beyond `initial_chat_sync`), a rename in Teams still names the room after its team,
    # and the room's bridge state still names the team.
    assert (await _bridge_state(mx_ada, chan_a, chan))["network"] == {
        "id": team["id"],
        "displayname": "Contoso",
    }
    await bridge.astop(timeout=STOP_TIMEOUT)
    bridge = bridge_factory(overrides={"bridge.initial_chat_sync": 0})
    await bridge.astart()
    await control.wait_for_registration(ada["mri"], timeout=60)
    await control.set_topic(chan, "Design Review", by=bob["mri"])
    await mx_ada.wait_for_event(
        chan_a,
        lambda e: e.type == EventType.ROOM_NAME and e.content.name == "Design Review (Contoso)",
    )

    async def renamed_state():
        state = await _bridge_state(mx_ada, chan_a, chan)
        return state if state["channel"]["displayname"] == "Design Review (Contoso)" else None

    state = await wait_for(renamed_state)
    assert state["network"] == {"id": team["id"], "displayname": "Contoso"}
    await bridge.astop(timeout=STOP_TIMEOUT)
