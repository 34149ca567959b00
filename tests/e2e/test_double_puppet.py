"""Double puppeting: what the user does in the Teams apps shows in Matrix as done by their own
Matrix account, never goes back to Teams, and moves their read marker; 1:1 rooms are in
their m.direct; `login-matrix` / `logout-matrix` switch it by hand (the token redacted)."""

from __future__ import annotations

import time

from mautrix.types import EventType, ReceiptType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

STOP_TIMEOUT = 5
SOURCE = "fi.mau.double_puppet_source"


def _replaces(e, event_id: str) -> bool:
    relates = getattr(e.content, "relates_to", None)
    rel_type = getattr(relates, "rel_type", None)
    return (
        bool(relates)
        and getattr(rel_type, "value", rel_type) == "m.replace"
        and (relates.event_id == event_id)
    )


def _is_reply_to(event_id: str):
    return lambda e: getattr(e, "redacts", None) == event_id


async def test_own_teams_actions_come_from_the_users_account(
    backend, synapse, bridge_factory, control, matrix_user
):
    mx = matrix_user
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = (await control.create_chat("one_to_one", [me["mri"], ada["mri"]]))["id"]
    secret = f"as_token:{synapse.double_puppet.as_token}"
    bridge = bridge_factory(overrides={"bridge.login_shared_secret_map": {"localhost": secret}})
    await bridge.astart()
    dm = await login_through_bot(mx, reg, control, me["mri"])
    ada_p, me_ghost = puppet_mxid(reg, ada["mri"]), puppet_mxid(reg, me["mri"])

    # The 1:1 room: joined by the user's own account at once, and in their m.direct.
    room = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")

    async def joined() -> bool:
        return room in mx.joined

    await wait_for(joined)

    async def listed() -> bool:
        try:
            direct = await mx.client.get_account_data(EventType.DIRECT)
        except Exception:
            return False
        return room in (direct.get(ada_p) or [])

    await wait_for(listed)
    await mx.join(room)  # (the test client's own view of it)
    await control.wait_for_registration(me["mri"], timeout=60)

    # A message written in the Teams app arrives from the user's account, marked as the
    # bridge's, and is not posted to Teams again.
    posted = await control.post_message(chat, sender=me["mri"], content="<p>from my phone</p>")
    own = await mx.wait_for_message(room, body="from my phone")
    assert own.sender == mx.user_id
    raw = await mx.client.get_event(room, own.event_id)
    assert raw.content.get(SOURCE)
    await control.post_message(chat, sender=ada["mri"], content="<p>seen it</p>")
    await mx.wait_for_message(room, body="seen it")
    texts = [m["content"] for m in await control.list_messages(chat)]
    assert texts.count("<p>from my phone</p>") == 1

    # An edit, a reaction and a delete made in Teams: by the user's account too.
    await control.edit_message(chat, posted["id"], me["mri"], "<p>from my phone, edited</p>")
    edit = await mx.wait_for_event(room, lambda e: _replaces(e, own.event_id))
    assert edit.sender == mx.user_id
    ada_msg = await mx.wait_for_message(room, body="seen it")
    ada_id = next(m["id"] for m in await control.list_messages(chat) if "seen it" in m["content"])
    await control.react(chat, ada_id, me["mri"], "like")
    reaction = await mx.wait_for_event(room, lambda e: e.type == EventType.REACTION)
    assert reaction.sender == mx.user_id
    assert reaction.content.relates_to.event_id == ada_msg.event_id
    await control.delete_message(chat, posted["id"], me["mri"])
    redaction = await mx.wait_for_event(room, _is_reply_to(own.event_id))
    assert redaction.sender == mx.user_id

    # Reading the chat in Teams moves the user's read receipt in Matrix.
    now = int(time.time() * 1000)
    await control.set_horizon(chat, me["mri"], f"{ada_id};{now};{ada_id}")
    await mx.wait_for_ephemeral(
        room,
        lambda e: (
            e.type == EventType.RECEIPT
            and mx.user_id in (e.content.get(ada_msg.event_id) or {}).get(ReceiptType.READ, {})
        ),
    )

    # Nothing of all that went back to Teams: the chat has only what was done there.
    texts = [m["content"] for m in await control.list_messages(chat)]
    assert not [t for t in texts if "from my phone" in t and "edited" not in t]

    # logout-matrix: own messages come from the ghost of the user again.
    await mx.send_text(dm, "logout-matrix")
    await mx.wait_for_notice(dm, contains="Successfully disabled double puppeting")
    await control.post_message(chat, sender=me["mri"], content="<p>as a ghost</p>")
    ghostly = await mx.wait_for_message(room, body="as a ghost")
    assert ghostly.sender == me_ghost

    # login-matrix with an access token: on again, and the token leaves the room.
    token = mx.client.api.token
    sent = await mx.send_text(dm, f"login-matrix {token}")
    await mx.wait_for_notice(dm, contains="Successfully enabled double puppeting")

    async def redacted() -> bool:
        event = await mx.client.get_event(dm, sent)
        return not event.content.serialize().get("body")

    await wait_for(redacted)
    await control.post_message(chat, sender=me["mri"], content="<p>myself again</p>")
    again = await mx.wait_for_message(room, body="myself again")
    assert again.sender == mx.user_id
    await mx.send_text(dm, "ping-matrix")
    await mx.wait_for_notice(dm, contains="Your Matrix login is working")
    await bridge.astop(timeout=STOP_TIMEOUT)
