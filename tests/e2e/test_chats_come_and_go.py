"""Chats that come and go: a chat (and a meeting chat) the user joined while the bridge was
down gets its room at the next start; leaving a chat, or being removed from it, in Teams
takes the user out of its room, with a word in the management room."""

from __future__ import annotations

from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, wait_for

STOP_TIMEOUT = 5


def _own_leave(user_id: str):
    def check(e) -> bool:
        return (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == user_id
            and str(getattr(e.content.membership, "value", e.content.membership)) == "leave"
        )

    return check


async def test_chats_made_while_down_arrive_and_chats_left_in_teams_are_left(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    first = await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Engines")
    bridge = bridge_factory()
    await bridge.astart()
    dm = await login_through_bot(matrix_user, reg, control, me["mri"])
    engines = await matrix_user.wait_for_invite(lambda inv: inv.name == "Engines")
    await matrix_user.join(engines)
    await control.wait_for_registration(me["mri"], timeout=60)

    # While the bridge is down, Grace is added to a group chat and to a meeting's chat.
    await bridge.astop(timeout=STOP_TIMEOUT)
    later = await control.create_chat("group", [me["mri"], ada["mri"]], "Difference")
    meeting = await control.create_chat("meeting", [me["mri"], ada["mri"], bob["mri"]], "Standup")
    await control.post_message(later["id"], sender=ada["mri"], content="<p>while away</p>")
    await bridge.astart()
    difference = await matrix_user.wait_for_invite(lambda inv: inv.name == "Difference")
    standup = await matrix_user.wait_for_invite(lambda inv: inv.name == "Standup")
    await matrix_user.join(difference)
    await matrix_user.join(standup)
    await control.wait_for_registration(me["mri"], timeout=60)

    # The meeting chat is a room like a group chat: Teams messages cross both ways.
    await control.post_message(meeting["id"], sender=bob["mri"], content="<p>agenda?</p>")
    await matrix_user.wait_for_message(standup, body="agenda?")

    # Removed from a chat by someone else: out of the room, told why.
    await control.remove_member(first["id"], me["mri"], by=ada["mri"])
    removed = await matrix_user.wait_for_event(engines, _own_leave(matrix_user.user_id))
    assert removed.content.reason == "Removed from the Teams chat"
    await matrix_user.wait_for_notice(dm, contains="You were removed from the Teams chat Engines")

    # Leaving a chat in Teams: the same, as leaving.
    await control.remove_member(later["id"], me["mri"], by=me["mri"])
    left = await matrix_user.wait_for_event(difference, _own_leave(matrix_user.user_id))
    assert left.content.reason == "Left the Teams chat"
    await matrix_user.wait_for_notice(dm, contains="You left the Teams chat Difference")

    # The chats Grace is still in are untouched.
    await control.post_message(meeting["id"], sender=ada["mri"], content="<p>still here</p>")
    await matrix_user.wait_for_message(standup, body="still here")
    assert standup in matrix_user.joined

    async def engines_left() -> bool:
        return engines not in matrix_user.joined

    await wait_for(engines_left)
    await bridge.astop(timeout=STOP_TIMEOUT)
