"""Hostile profiles from Teams: names that are too long or carry control and bidi characters,
and pictures that are not what they claim to be. Ghosts get clean names, no message is lost,
nothing a client could run is shown inline, and the chat keeps working both ways.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import unicodedata

import pytest
from mautrix.types import EventType
from PIL import Image

from teams_bridge.teams.attachments import UriObject, parse_content
from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for

# Longer than any homeserver takes as a display name (Synapse: 256 characters).
LONG_NAME = ("Hubert Wolfeschlegelsteinhausenbergerdorff " * 7)[:300]
NUL_NAME = "Nul\x00l Byte"
RLO_NAME = "Eve \u202eexe.gnp"  # shows as "Eve png.exe" when set raw
# Both at once: refused by the homeserver as too long, and by PostgreSQL for the NUL.
BOTH_NAME = "Mallory\x00\u202e " + "x" * 300
# Control characters, bidi embeddings/overrides/isolates/marks and other invisible ones.
TROUBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

SVG_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
    b'<script type="text/javascript">alert(document.cookie)</script>'
    b'<rect width="40" height="40" fill="red"/></svg>'
)
# libmagic reads only the first 8 KiB: past a long comment it cannot see the <svg>.
SVG_HIDDEN = b"<!--" + b" padding" * 1200 + b" -->\n" + SVG_SCRIPT


def _png(width: int, height: int) -> bytes:
    img = Image.new("RGB", (width, height), (10, 200, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _assert_clean(text: str, limit: int) -> None:
    assert not TROUBLE.search(text), repr(text)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text), repr(text)
    assert len(text.encode("utf-8")) <= limit, len(text.encode("utf-8"))


async def _room_name(matrix_user, room: str) -> str | None:
    for evt in await matrix_user.room_state(room):
        if evt.type == EventType.ROOM_NAME:
            return evt.content.name
    return None


async def _displayname(matrix_user, user_id: str) -> str | None:
    return (await matrix_user.client.get_profile(user_id)).displayname


async def _both_ways(control, matrix_user, room, chat_id, sender_mri, sender_mxid, tag):
    """A message still crosses from Teams to Matrix and from Matrix to Teams."""
    await control.post_message(chat_id, sender=sender_mri, content=f"<p>{tag} from Teams</p>")
    await matrix_user.wait_for_message(room, sender=sender_mxid, body=f"{tag} from Teams")
    await matrix_user.send_text(room, f"{tag} from Matrix")

    async def delivered():
        return any(
            f"{tag} from Matrix" in (m.get("content") or "")
            for m in await control.list_messages(chat_id)
        )

    await wait_for(delivered)


@pytest.mark.parametrize("backend", ["pg", "lite"], indirect=True)
async def test_hostile_names_become_clean_ghosts_and_lose_no_message(
    backend, synapse, bridge_factory, control, fake_teams, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    hostile = {
        "long": await control.create_user(display_name=LONG_NAME, kind="work"),
        "nul": await control.create_user(display_name=NUL_NAME, kind="work"),
        "rlo": await control.create_user(display_name=RLO_NAME, kind="work"),
        "both": await control.create_user(display_name=BOTH_NAME, kind="work"),
    }
    members = [me["mri"]] + [u["mri"] for u in hostile.values()]
    # No topic: the room is named after its members.
    chat = await control.create_chat(kind="group", members=members)
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(timeout=60)
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ghosts = {key: puppet_mxid(reg, user["mri"]) for key, user in hostile.items()}

    # Every one of them writes (with their own name on the message); every message arrives.
    for key, user in hostile.items():
        await control.post_message(chat["id"], sender=user["mri"], content=f"<p>hello {key}</p>")
    for key, ghost in ghosts.items():
        await matrix_user.wait_for_message(room, sender=ghost, body=f"hello {key}", timeout=60)

    # The ghosts carry clean names that fit, with the template's suffix kept.
    names = {key: await _displayname(matrix_user, ghost) for key, ghost in ghosts.items()}
    for key, name in names.items():
        assert name is not None and name.endswith(" (Teams)"), (key, name)
        _assert_clean(name, 256)
    assert names["nul"] == "Null Byte (Teams)"
    assert names["rlo"] == "Eve exe.gnp (Teams)"
    assert names["long"].startswith("Hubert Wolfeschlegelsteinhausenbergerdorff Hubert")
    assert names["both"].startswith("Mallory xxxx")
    for key in ("long", "both"):
        assert names[key].endswith("\u2026 (Teams)"), names[key]  # cut, and shown to be

    # The room name built from those names is clean and fits too.
    room_name = await _room_name(matrix_user, room)
    assert room_name and "Null Byte" in room_name and "Eve exe.gnp" in room_name, room_name
    _assert_clean(room_name, 255)

    # A hostile topic renames the room to its clean form (JSON can carry a NUL, XML not).
    fake_teams.options.thread_activity_format = "json"
    topic = "Plan\x00 B\u202e " + "!" * 300
    await control.set_topic(chat["id"], topic, by=hostile["both"]["mri"])
    renamed = await matrix_user.wait_for_event(
        room,
        lambda e: e.type == EventType.ROOM_NAME and (e.content.name or "").startswith("Plan B"),
    )
    _assert_clean(renamed.content.name, 255)

    # Someone with such a name who joins later: the roster's name, then their first message.
    late = await control.create_user(display_name="Late\x00\u202e " + "z" * 300, kind="work")
    await control.add_member(chat["id"], late["mri"], by=me["mri"])
    await control.post_message(chat["id"], sender=late["mri"], content="<p>hello late</p>")
    late_ghost = puppet_mxid(reg, late["mri"])
    await matrix_user.wait_for_message(room, sender=late_ghost, body="hello late", timeout=60)
    late_name = await _displayname(matrix_user, late_ghost)
    assert late_name and late_name.startswith("Late zzz"), late_name
    _assert_clean(late_name, 256)

    # A later name change of the worst of them is bridged the same way, message kept.
    await control.post_message(
        chat["id"],
        sender=hostile["both"]["mri"],
        content="<p>renamed</p>",
        imdisplayname="\u2066Mallory\x07 \u202eReloaded\u2069" + "\u200b" * 300,
    )
    await matrix_user.wait_for_message(room, sender=ghosts["both"], body="renamed")

    # After all that, the chat still works both ways and the bridge is up.
    await _both_ways(
        control, matrix_user, room, chat["id"], hostile["both"]["mri"], ghosts["both"], "still"
    )
    assert bridge.proc is not None and bridge.proc.poll() is None


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_svg_is_never_an_inline_image(backend, synapse, bridge_factory, control, matrix_user):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Pics")
    bridge = bridge_factory()
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Pics")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    ada_puppet = puppet_mxid(reg, ada["mri"])

    # Teams -> Matrix: an SVG with a script posted as a picture and declared a PNG; the same
    # declared as what it is; one libmagic cannot recognise; then a real PNG.
    png = _png(24, 16)
    posts = [
        (SVG_SCRIPT, "image/png"),
        (SVG_SCRIPT, "image/svg+xml"),
        (SVG_HIDDEN, "image/png"),
        (png, "image/png"),
    ]
    for data, declared in posts:
        await control.post_media(
            chat["id"], ada["mri"], "image", content_b64=_b64(data), content_type=declared
        )

    def media():
        return [
            e
            for e in matrix_user.messages(room)
            if e.sender == ada_puppet and "url" in e.content.serialize()
        ]

    await matrix_user.wait_for_event(room, lambda e: len(media()) >= len(posts))
    got = [e.content.serialize() for e in media()]
    assert [c["msgtype"] for c in got] == ["m.file", "m.file", "m.file", "m.image"], got
    assert got[0]["info"]["mimetype"] == "image/svg+xml"
    assert got[1]["info"]["mimetype"] == "image/svg+xml"
    assert not got[2]["info"]["mimetype"].startswith("image/"), got[2]
    assert got[3]["info"]["mimetype"] == "image/png"
    assert (got[3]["info"]["w"], got[3]["info"]["h"]) == (24, 16)
    for content, (data, _) in zip(got, posts, strict=True):
        assert content["info"]["size"] == len(data)

    # Matrix -> Teams: an SVG sent as m.image goes to Teams as a file, not a picture.
    mxc = await matrix_user.client.upload_media(
        SVG_SCRIPT, mime_type="image/svg+xml", filename="logo.svg"
    )
    await matrix_user.client.send_message_event(
        room,
        EventType.ROOM_MESSAGE,
        {
            "msgtype": "m.image",
            "body": "logo.svg",
            "url": mxc,
            "info": {"mimetype": "image/svg+xml", "size": len(SVG_SCRIPT)},
        },
    )

    async def svg_in_teams():
        for message in await control.list_messages(chat["id"]):
            if not str(message.get("from", "")).endswith(me["mri"]):
                continue
            parsed = parse_content(message["messagetype"], message.get("content") or "")
            if parsed.attachments:
                return message, parsed.attachments[0]
        return None

    message, attachment = await wait_for(svg_in_teams)
    assert "AMSImage" not in message["content"]
    assert isinstance(attachment, UriObject) and attachment.type == "File.1", attachment
    assert attachment.original_name == "logo.svg"
    stored = (await control.ams_object(attachment.object_id))["contents"]["original"]
    assert stored["sha256"] == hashlib.sha256(SVG_SCRIPT).hexdigest()

    await _both_ways(control, matrix_user, room, chat["id"], ada["mri"], ada_puppet, "after")
    assert bridge.proc is not None and bridge.proc.poll() is None
