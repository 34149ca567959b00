"""Members both ways: inviting or kicking a ghost in a group room adds or removes the person
in Teams; refusals are told and undone; leaving a room never leaves the Teams chat unless
the user says so (`leave`)."""

from __future__ import annotations

from mautrix.types import EventType, Membership, UserID

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

STOP_TIMEOUT = 5


def _member(user_id: str, membership: str):
    def check(e) -> bool:
        value = getattr(e.content, "membership", None)
        return (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == user_id
            and getattr(value, "value", value) == membership
        )

    return check


async def test_invites_kicks_refusals_and_leaving(
    backend, synapse, bridge_factory, control, matrix_user, matrix_client_factory
):
    mx = matrix_user
    stranger = await matrix_client_factory()
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    engines = (await control.create_chat("group", [me["mri"], ada["mri"]], "Engines"))["id"]
    difference = (await control.create_chat("group", [me["mri"], ada["mri"]], "Difference"))["id"]
    await control.create_chat("one_to_one", [me["mri"], ada["mri"]])
    bridge = bridge_factory(permissions={synapse.server_name: "user", stranger.user_id: "relay"})
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])
    rooms = {}
    for name in ("Engines", "Difference", "Ada Lovelace"):
        rooms[name] = await mx.wait_for_invite(lambda inv, n=name: inv.name == n)
        await mx.join(rooms[name])
    await control.wait_for_registration(me["mri"], timeout=60)
    room = rooms["Engines"]
    ada_p, bob_p, carol_p = (puppet_mxid(reg, u["mri"]) for u in (ada, bob, carol))

    async def roster(chat: str) -> set[str]:
        return {m["mri"] for m in (await control.get_chat(chat))["members"]}

    # Inviting a ghost adds the person in Teams; they join the room.
    await mx.client.invite_user(room, UserID(carol_p))
    await mx.wait_for_event(room, _member(carol_p, "join"))
    await wait_for(lambda: _has(roster(engines), carol["mri"]))
    # Kicking a ghost removes them in Teams.
    await mx.client.kick_user(room, UserID(carol_p), reason="bye")
    await wait_for(lambda: _lacks(roster(engines), carol["mri"]))

    # Teams refuses an addition: told, and the ghost does not stay invited.
    await control.add_fault("/members/", status=403, method="PUT")
    await mx.client.invite_user(room, UserID(bob_p))
    notice = await mx.wait_for_notice(room, contains="was not added to the Teams chat")
    assert "Bob Babbage" in notice.content.body and "403" in notice.content.body
    await mx.wait_for_event(room, _member(bob_p, "leave"))
    assert bob["mri"] not in await roster(engines)
    # Teams refuses a removal: told, and the ghost is back.
    await control.add_fault("/members/", status=403, method="DELETE")
    await mx.client.kick_user(room, UserID(ada_p), reason="bye")
    await mx.wait_for_notice(room, contains="was not removed from the Teams chat")
    back = await mx.wait_for_event(room, _member(ada_p, "join"))
    assert back.sender == ada_p and ada["mri"] in await roster(engines)

    # Someone in the room without the right to use the bridge changes nothing in Teams:
    # their invite of a ghost is declined with the reason, their commands are refused.
    await mx.client.invite_user(room, stranger.user_id)
    await stranger.join(room)
    await stranger.client.invite_user(room, UserID(carol_p))

    def declined(e) -> bool:
        reason = getattr(e.content, "reason", None) or ""
        return _member(carol_p, "leave")(e) and e.sender == carol_p and "not allowed" in reason

    await mx.wait_for_event(room, declined)
    for command in ("!teams leave", "!teams start-chat " + carol["mri"], "!teams set-relay"):
        sent = await stranger.send_text(room, command)
        answer = await stranger.wait_for_notice(room, after=sent)
        assert "You are not allowed to use this bridge" in answer.content.body
    assert carol["mri"] not in await roster(engines)
    assert me["mri"] in await roster(engines)

    # A 1:1 has a fixed roster.
    await mx.client.invite_user(rooms["Ada Lovelace"], UserID(bob_p))
    fixed = await mx.wait_for_notice(rooms["Ada Lovelace"], contains="was not added")
    assert "exactly two people" in fixed.content.body

    # Leaving a room does not leave the Teams chat.
    await mx.leave(rooms["Difference"])
    sent = await mx.send_text(dm, "ping")
    await mx.wait_for_notice(dm, contains="logged in as", after=sent)
    assert me["mri"] in await roster(difference)
    # `leave` in a room does: out of the chat, and (its echo) out of the room, told why.
    sent = await mx.send_text(room, "!teams leave")
    await mx.wait_for_notice(room, contains="You left the Teams chat", after=sent)
    await wait_for(lambda: _lacks(roster(engines), me["mri"]))
    await mx.wait_for_event(room, _member(mx.user_id, Membership.LEAVE.value))
    await mx.wait_for_notice(dm, contains="You left the Teams chat Engines")
    await bridge.astop(timeout=STOP_TIMEOUT)


async def _has(members, mri: str) -> bool:
    return mri in await members


async def _lacks(members, mri: str) -> bool:
    return mri not in await members
