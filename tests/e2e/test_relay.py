"""Relay mode: with `set-relay`, messages of Matrix users without a Teams login go through
the relay user's account, attributed; after `unset-relay` they fail visibly."""

from __future__ import annotations

from mautrix.types import MessageType, UserID

from tests.e2e.helpers import login_through_bot, wait_for
from tests.fake_teams.demo import square_png

STOP_TIMEOUT = 5


async def test_relayed_text_image_edit_delete_and_unset(
    backend, synapse, bridge_factory, control, matrix_user, matrix_client_factory
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = (await control.create_chat("group", [me["mri"], ada["mri"]], "Engines"))["id"]
    bridge = bridge_factory(overrides={"bridge.relay.enabled": True})
    await bridge.astart()
    await login_through_bot(mx, reg, control, me["mri"])
    room = await mx.wait_for_invite(lambda inv: inv.name == "Engines")
    await mx.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    guest = await matrix_client_factory()
    await guest.client.set_displayname("Guest Gail")
    await mx.client.invite_user(room, UserID(guest.user_id))
    await guest.wait_for_invite(lambda inv: inv.room_id == room)
    await guest.join(room)

    async def teams_messages() -> list[dict]:
        return [
            m for m in await control.list_messages(chat) if m.get("messagetype") != "Control/Typing"
        ]

    # Without a relay: refused with a notice, nothing reaches Teams.
    before = len(await teams_messages())
    await guest.send_text(room, "no relay yet")
    await mx.wait_for_notice(room, contains="you are not logged in to Teams")
    assert len(await teams_messages()) == before

    # set-relay: text through Grace's account, attributed to the guest.
    sent = await mx.send_text(room, "!teams set-relay")
    await mx.wait_for_notice(room, contains="will now be bridged", after=sent)
    text_id = await guest.send_text(room, "hello via relay")

    async def relayed(fragment: str):
        for m in await teams_messages():
            if fragment in m.get("content", ""):
                return m
        return None

    message = await wait_for(lambda: relayed("hello via relay"))
    assert message["from"].endswith(me["mri"])
    assert "<b>Guest Gail</b>: hello via relay" in message["content"]

    # An image: the template is its caption.
    await guest.send_file(room, square_png((1, 2, 3), 8), "dot.png", "image/png", MessageType.IMAGE)
    image = await wait_for(lambda: relayed("sent an image"))
    assert "Guest Gail" in image["content"] and "AMSImage" in image["content"]

    # An edit and a delete of the relayed message reach Teams too.
    await guest.edit_text(room, text_id, "hello again via relay")
    edited = await wait_for(lambda: relayed("hello again via relay"))
    assert "<b>Guest Gail</b>:" in edited["content"]
    await guest.client.redact(room, text_id)

    async def deleted() -> bool:
        found = next((m for m in await teams_messages() if m["id"] == edited["id"]), None)
        return bool(found and found.get("properties", {}).get("deletetime"))

    await wait_for(deleted)

    # unset-relay: the guest's messages fail again, visibly, and stay out of Teams.
    sent = await mx.send_text(room, "!teams unset-relay")
    await mx.wait_for_notice(room, contains="will no longer be bridged", after=sent)
    count = len(await teams_messages())
    after = await guest.send_text(room, "after unset")
    await mx.wait_for_notice(room, contains="you are not logged in to Teams", after=after)
    assert len(await teams_messages()) == count
    await bridge.astop(timeout=STOP_TIMEOUT)
