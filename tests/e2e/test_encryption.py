"""End-to-bridge encryption: with `bridge.encryption.allow` and `default`, portal rooms are
made encrypted; an E2EE-capable Matrix client (mautrix's client crypto over python-olm)
reads what comes from Teams and what it sends reaches Teams."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from typing import Any
from urllib.parse import quote

from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.types import EventType
from PIL import Image

from tests.e2e.helpers import (
    CODE_RE,
    encryption_overrides,
    login_through_bot,
    puppet_mxid,
    wait_for,
)
from tests.harness.e2ee_client import E2EEClient

STOP_TIMEOUT = 5


async def _e2ee_user(synapse) -> E2EEClient:
    client = await E2EEClient.create(synapse, f"e2ee_{uuid.uuid4().hex[:10]}")
    assert isinstance(client, E2EEClient)
    return client


async def test_encryption_enabled_in_an_existing_portal(backend, synapse, bridge_factory, control):
    """With encryption allowed but not the default, a 1:1 room is made in the clear; the
    user turns encryption on, and from then on both ways are encrypted."""
    reg = synapse.appservices[backend]
    mx = await _e2ee_user(synapse)
    try:
        me = await control.create_user(display_name="Grace Hopper", kind="work")
        ada = await control.create_user(display_name="Ada Lovelace", kind="work")
        chat = (await control.create_chat("one_to_one", [me["mri"], ada["mri"]]))["id"]
        bridge = bridge_factory(
            overrides=encryption_overrides(**{"bridge.encryption.default": False})
        )
        await bridge.astart()
        await login_through_bot(mx, reg, control, me["mri"])
        room = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
        await mx.join(room)
        await control.wait_for_registration(me["mri"], timeout=60)
        ada_p = puppet_mxid(reg, ada["mri"])
        await control.post_message(chat, sender=ada["mri"], content="<p>in the clear</p>")
        clear = await mx.wait_for_message(room, sender=ada_p, body="in the clear")
        assert (await _raw(mx, room, clear.event_id))["type"] == "m.room.message"

        await mx.enable_encryption(room)
        await mx.wait_for_event(room, lambda e: str(e.type) == "m.room.encryption")

        # Teams -> Matrix: sent encrypted, read in plaintext, from when the bridge has the
        # room's m.room.encryption (it comes in an appservice transaction of its own, so a
        # message right after it may still go out in the clear).
        tries = 0

        async def encrypted_arrival() -> Any:
            nonlocal tries
            tries += 1
            text = f"hello there {tries}"
            await control.post_message(chat, sender=ada["mri"], content=f"<p>{text}</p>")
            got = await mx.wait_for_message(room, sender=ada_p, body=text)
            raw = await _raw(mx, room, got.event_id)
            return got if raw["type"] == "m.room.encrypted" else None

        got = await wait_for(encrypted_arrival)
        assert got.content.body.startswith("hello there")

        # Matrix -> Teams: the client encrypts, the bridge decrypts.
        sent = await mx.send_text(room, "secret plans")
        assert (await _raw(mx, room, sent))["type"] == "m.room.encrypted"

        async def in_teams() -> bool:
            return any(
                "secret plans" in (m.get("content") or "")
                for m in await control.list_messages(chat)
            )

        await wait_for(in_teams)
        await bridge.astop(timeout=STOP_TIMEOUT)
    finally:
        await mx.close()


def _png(seed: int) -> bytes:
    image = Image.frombytes("RGB", (40, 30), hashlib.sha256(bytes([seed])).digest() * 113)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def _download(mx: E2EEClient, mxc: str) -> bytes:
    api = mx.client.api
    url = api.get_download_url(mxc, authenticated=True)
    async with api.session.get(url, headers={"Authorization": f"Bearer {api.token}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def _raw(mx: E2EEClient, room: str, event_id: str) -> dict[str, Any]:
    return await mx.client.api.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    )


async def test_everything_crosses_an_encrypted_group_room_and_survives_a_restart(
    backend, synapse, bridge_factory, control
):
    reg = synapse.appservices[backend]
    mx = await _e2ee_user(synapse)
    try:
        await _group_room_scenario(reg, mx, bridge_factory, control)
    finally:
        await mx.close()


async def _group_room_scenario(reg, mx: E2EEClient, bridge_factory, control) -> None:
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    chat = (await control.create_chat("group", [me["mri"], ada["mri"], bob["mri"]], "Engines"))[
        "id"
    ]
    await control.post_message(chat, sender=ada["mri"], content="<p>from before</p>")
    overrides = encryption_overrides(**{"bridge.backfill.initial_messages": 10})
    overrides["bridge.message_status_events"] = True
    bridge = bridge_factory(overrides=overrides)
    await bridge.astart()

    # An encrypted management room: the bot's answers are encrypted too.
    dm = await mx.client.create_room(
        is_direct=True,
        invitees=[reg.bot_mxid],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    mx.joined.add(dm)
    welcome = await mx.wait_for_notice(dm, contains="Teams bridge bot")
    assert (await _raw(mx, dm, welcome.event_id))["type"] == "m.room.encrypted"
    await mx.send_text(dm, "login")
    prompt = await mx.wait_for_notice(dm, contains="enter the code")
    code = CODE_RE.search(prompt.content.body)
    assert code
    await control.approve_device_code(code.group(1), me["mri"])
    await mx.wait_for_notice(dm, contains="Successfully logged in", timeout=60)

    room = await mx.wait_for_invite(lambda inv: inv.name == "Engines")
    await mx.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_p = puppet_mxid(reg, ada["mri"])
    # The history is readable: its keys were shared with the invited user.
    await mx.wait_for_message(room, sender=ada_p, body="from before")

    # Text, Teams -> Matrix, and an image, encrypted as a file.
    posted = await control.post_message(chat, sender=ada["mri"], content="<p>first</p>")
    first = await mx.wait_for_message(room, sender=ada_p, body="first")
    assert (await _raw(mx, room, first.event_id))["type"] == "m.room.encrypted"
    png = _png(1)
    await control.post_media(
        chat, ada["mri"], "image", content_b64=base64.b64encode(png).decode(),
        content_type="image/png",
    )  # fmt: skip
    image = await mx.wait_for_event(
        room,
        lambda e: (
            e.sender == ada_p
            and getattr(getattr(e.content, "msgtype", None), "value", None) == "m.image"
        ),
    )
    content = image.content.serialize()
    assert "url" not in content and content["file"]["url"].startswith("mxc://")
    assert content["info"]["mimetype"] == "image/png" and content["info"]["size"] == len(png)
    stored = await _download(mx, content["file"]["url"])
    assert stored != png  # the homeserver holds ciphertext only
    file = content["file"]
    assert decrypt_attachment(stored, file["key"]["k"], file["hashes"]["sha256"], file["iv"]) == png

    # An image, Matrix -> Teams: the bridge decrypts it before it goes to AMS.
    png2 = _png(2)
    cipher, info = encrypt_attachment(png2)
    info.url = await mx.client.upload_media(cipher, mime_type="application/octet-stream")
    await mx.client.send_message_event(
        room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.image",
            "body": "drawing.png",
            "file": info.serialize(),
            "info": {"mimetype": "image/png", "size": len(png2)},
        },
    )

    async def uploaded() -> dict[str, Any] | None:
        for obj in await control.ams_objects():
            if obj.get("filename") == "drawing.png":
                return obj
        return None

    obj = await wait_for(uploaded)
    full = await control.ams_object(obj["id"], include_bytes=False)
    sizes = {c["sha256"] for c in full["contents"].values()}
    assert hashlib.sha256(png2).hexdigest() in sizes

    # Edits both ways.
    await control.edit_message(chat, posted["id"], ada["mri"], "<p>first, edited</p>")
    await mx.wait_for_event(
        room,
        lambda e: (
            e.sender == ada_p
            and "first, edited" in json.dumps(e.content.serialize().get("m.new_content") or {})
        ),
    )
    mine = await mx.send_text(room, "typo")
    await wait_for(lambda: _teams_has(control, chat, "typo"))
    await mx.edit_text(room, mine, "no typo")
    await wait_for(lambda: _teams_has(control, chat, "no typo"))

    # Reactions both ways (the client's reaction encrypted too).
    await control.react(chat, posted["id"], ada["mri"], "like")
    await mx.wait_for_event(room, lambda e: e.type == EventType.REACTION and e.sender == ada_p)
    mx.client.encryption_blacklist = set()
    reaction = await mx.react(room, first.event_id, "😮")
    assert (await _raw(mx, room, reaction))["type"] == "m.room.encrypted"

    async def surprised() -> bool:
        for message in await control.list_messages(chat):
            if message["id"] == posted["id"]:
                return "surprised" in json.dumps(message.get("properties") or {})
        return False

    await wait_for(surprised)

    # A reply, Matrix -> Teams: the quote names the message replied to.
    await mx.reply_text(room, first.event_id, "answering")

    async def quoted() -> bool:
        return any(
            "answering" in (m.get("content") or "") and posted["id"] in (m.get("content") or "")
            for m in await control.list_messages(chat)
        )

    await wait_for(quoted)

    # A reply, Teams -> Matrix: a reply to the bridged event.
    reply_html = (
        f'<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" '
        f'itemid="{posted["id"]}"><strong itemprop="mri" itemid="{ada["mri"]}">Ada Lovelace'
        f'</strong><span itemprop="time" itemid="{posted["id"]}"></span>'
        f'<p itemprop="preview">first</p></blockquote><p>replying in Teams</p>'
    )
    await control.post_message(chat, sender=ada["mri"], content=reply_html)
    teams_reply = await mx.wait_for_message(room, sender=ada_p, body="replying in Teams")
    in_reply = teams_reply.content.serialize()["m.relates_to"]["m.in_reply_to"]
    assert in_reply["event_id"] == first.event_id

    # Deletes both ways.
    doomed = await control.post_message(chat, sender=ada["mri"], content="<p>doomed</p>")
    doomed_evt = await mx.wait_for_message(room, sender=ada_p, body="doomed")
    await control.delete_message(chat, doomed["id"], ada["mri"])
    await mx.wait_for_event(
        room, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == doomed_evt.event_id
    )
    regret = await mx.send_text(room, "regrettable")
    await wait_for(lambda: _teams_has(control, chat, "regrettable"))
    await mx.redact(room, regret)
    await wait_for(lambda: _not(_teams_has(control, chat, "regrettable")))

    # Typing and read receipts (not encrypted in Matrix) still cross.
    await control.typing(chat, ada["mri"])
    await mx.wait_for_ephemeral(
        room, lambda e: e.type == EventType.TYPING and ada_p in e.content.user_ids
    )
    await control.clear_requests()
    await mx.client.send_receipt(room, teams_reply.event_id)

    async def horizon_set() -> bool:
        return bool(await control.requests(path_contains=f"{chat}/properties", method="PUT"))

    await wait_for(horizon_set)

    # A restart keeps the bridge's device and its sessions.
    devices_before = await _bot_devices(mx, reg)
    await bridge.astop(timeout=STOP_TIMEOUT)
    await bridge.astart()
    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(chat, sender=ada["mri"], content="<p>after restart</p>")
    await mx.wait_for_message(room, sender=ada_p, body="after restart")
    await mx.send_text(room, "still secret")
    await wait_for(lambda: _teams_has(control, chat, "still secret"))
    # (Earlier tests' bridges, with other databases, left devices of their own.)
    assert await _bot_devices(mx, reg) == devices_before

    # A message whose keys the bridge does not have: the room hears that it waits, the
    # bridge asks the client's device for the keys, and once the client answers it goes
    # through, once.
    sharing = False

    async def share_when_allowed(device: Any, request: Any) -> bool:
        return sharing and device.user_id == reg.bot_mxid

    mx.machine.allow_key_share = share_when_allowed
    # A new session, shared with our own devices only.
    await mx.machine.crypto_store.remove_outbound_group_session(room)
    await mx.machine.share_group_session(room, [mx.user_id])
    late = await mx.send_text(room, "sent before the keys")
    await mx.wait_for_notice(room, contains="does not have the keys")

    def waiting_status(e: Any) -> bool:
        content = e.content.serialize() if hasattr(e.content, "serialize") else {}
        return (
            str(e.type) == "com.beeper.message_send_status"
            and content.get("m.relates_to", {}).get("event_id") == late
            and content.get("status") == "FAIL_RETRIABLE"
        )

    waiting = await mx.wait_for_event(room, waiting_status)
    assert waiting.content.serialize()["reason"] == "com.beeper.undecryptable_event"
    assert not await _teams_has(control, chat, "sent before the keys")
    sharing = True
    await wait_for(lambda: _teams_has(control, chat, "sent before the keys"))
    texts = [m.get("content") or "" for m in await control.list_messages(chat)]
    assert sum("sent before the keys" in t for t in texts) == 1
    await bridge.astop(timeout=STOP_TIMEOUT)


async def _not(check) -> bool:
    return not await check


async def _teams_has(control, chat: str, text: str) -> bool:
    return any(text in (m.get("content") or "") for m in await control.list_messages(chat))


async def _bot_devices(mx: E2EEClient, reg) -> list[str]:
    keys = await mx.client.query_keys([reg.bot_mxid])
    return sorted(keys.device_keys.get(reg.bot_mxid, {}))
