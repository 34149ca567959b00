"""Files and media both ways: an image, a PDF, a short video and a voice message cross in
each direction and arrive with the same bytes, name, size and type; a caption with two
attachments becomes three Matrix events; a file over the limit gets a notice on the sending
side instead of silence.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
from typing import Any

import pytest
from mautrix.types import EventType
from PIL import Image

from teams_bridge.teams.attachments import UriObject, parse_content
from tests.e2e.helpers import login_through_bot, puppet_mxid, send_status_about, wait_for

MEDIA_TYPES = {"m.image", "m.file", "m.video", "m.audio"}


# -- sample files (real headers, so libmagic and Pillow recognise them) ------------------------
def _png(width: int, height: int, seed: int) -> bytes:
    img = Image.frombytes("RGB", (width, height), _random(width * height * 3, seed))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _random(size: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _pdf(seed: int) -> bytes:
    body = _random(3000, seed).hex().encode()
    return (
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\nstream\n"
        + body
        + b"\nendstream\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def _mp4(seed: int) -> bytes:
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
    return ftyp + _random(40_000, seed)


def _ogg_opus(seed: int) -> bytes:
    head = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    page = (
        b"OggS\x00\x02" + bytes(8) + b"\x01\x02\x03\x04" + bytes(8) + b"\x01" + bytes([len(head)])
    )
    return page + head + _random(12_000, seed)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- helpers ----------------------------------------------------------------------------------
async def _setup(synapse, backend, bridge_factory, control, matrix_user, overrides=None):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Files")
    direct = await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    bridge = bridge_factory(overrides=overrides)
    await bridge.astart()
    await login_through_bot(matrix_user, reg, control, me["mri"])
    room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Files")
    await matrix_user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    return reg, me, ada, chat, room, direct


async def _join_dm(matrix_user) -> str:
    return await matrix_user.join(
        await matrix_user.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
    )


async def _download(matrix_user, mxc: str) -> tuple[bytes, str]:
    """Bytes and Content-Type from the homeserver's (authenticated) media API."""
    client = matrix_user.client
    url = client.api.get_download_url(mxc, authenticated=True)
    headers = {"Authorization": f"Bearer {client.api.token}"}
    async with client.api.session.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read(), resp.headers.get("Content-Type", "")


async def _check_arrival(matrix_user, evt, *, msgtype: str, name: str, data: bytes, mime: str):
    content = evt.content.serialize()
    assert content["msgtype"] == msgtype
    assert content["body"] == name
    assert content.get("filename", name) == name
    assert content["info"]["size"] == len(data)
    assert content["info"]["mimetype"] == mime
    got, content_type = await _download(matrix_user, content["url"])
    assert _sha(got) == _sha(data)
    assert content_type.split(";")[0] == mime
    return content


async def _send_media(
    matrix_user,
    room: str,
    data: bytes,
    name: str,
    mime: str,
    msgtype: str,
    *,
    body: str | None = None,
    info: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    declare_size: bool = True,
) -> str:
    mxc = await matrix_user.client.upload_media(data, mime_type=mime, filename=name)
    content_info: dict[str, Any] = {"mimetype": mime, **(info or {})}
    if declare_size:
        content_info["size"] = len(data)
    content = {
        "msgtype": msgtype,
        "body": body or name,
        "filename": name,
        "url": mxc,
        "info": content_info,
        **(extra or {}),
    }
    return await matrix_user.client.send_message_event(room, EventType.ROOM_MESSAGE, content)


async def _teams_media_from(control, chat_id: str, mri: str) -> list[dict[str, Any]]:
    out = []
    for message in await control.list_messages(chat_id):
        if not str(message.get("from", "")).endswith(mri):
            continue
        parsed = parse_content(message["messagetype"], message.get("content") or "")
        if parsed.attachments:
            out.append({"message": message, "attachment": parsed.attachments[0]})
    return out


async def _check_ams(control, object_id: str, content_name: str, *, name, data, mime, chat_id):
    obj = await control.ams_object(object_id, include_bytes=False)
    assert obj["filename"] == name
    assert chat_id in obj["permissions"]
    stored = obj["contents"][content_name]
    assert stored["size"] == len(data)
    assert stored["sha256"] == _sha(data)
    assert stored["content_type"] == mime


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_image_pdf_video_and_voice_cross_both_ways_intact(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg, me, ada, chat, room, direct = await _setup(
        synapse, backend, bridge_factory, control, matrix_user
    )
    ada_puppet = puppet_mxid(reg, ada["mri"])
    png, pdf, mp4, ogg = _png(120, 80, 1), _pdf(2), _mp4(3), _ogg_opus(4)

    # Teams -> Matrix, in the formats the Teams clients send.
    await control.post_media(
        chat["id"], ada["mri"], "image", content_b64=_b64(png), content_type="image/png"
    )
    await control.post_media(
        chat["id"], ada["mri"], "file", content_b64=_b64(pdf), filename="report.pdf",
        content_type="application/pdf",
    )  # fmt: skip
    await control.post_media(
        chat["id"], ada["mri"], "video", content_b64=_b64(mp4), filename="clip.mp4",
        content_type="video/mp4", width=320, height=240, duration_ms=3000,
    )  # fmt: skip
    await control.post_media(
        chat["id"], ada["mri"], "voice", content_b64=_b64(ogg), filename="Voice message.ogg",
        content_type="audio/ogg", duration_ms=2500,
    )  # fmt: skip

    def media_from_ada():
        return [
            e
            for e in matrix_user.messages(room)
            if e.sender == ada_puppet
            and str(getattr(e.content.msgtype, "value", "")) in MEDIA_TYPES
        ]

    await matrix_user.wait_for_message(room, sender=ada_puppet, body="Voice message.ogg")
    image, file, video, voice = media_from_ada()
    got = await _check_arrival(
        matrix_user, image, msgtype="m.image", name="image.png", data=png, mime="image/png"
    )
    assert (got["info"]["w"], got["info"]["h"]) == (120, 80)
    await _check_arrival(
        matrix_user, file, msgtype="m.file", name="report.pdf", data=pdf, mime="application/pdf"
    )
    got = await _check_arrival(
        matrix_user, video, msgtype="m.video", name="clip.mp4", data=mp4, mime="video/mp4"
    )
    assert (got["info"]["w"], got["info"]["h"], got["info"]["duration"]) == (320, 240, 3000)
    got = await _check_arrival(
        matrix_user, voice, msgtype="m.audio", name="Voice message.ogg", data=ogg, mime="audio/ogg"
    )
    assert got["info"]["duration"] == 2500
    assert "org.matrix.msc3245.voice" in got

    # Matrix -> Teams, each in the shape the Teams client renders; the PDF with a caption.
    png2, pdf2, mp42, ogg2 = _png(64, 48, 5), _pdf(6), _mp4(7), _ogg_opus(8)
    await _send_media(matrix_user, room, png2, "drawing.png", "image/png", "m.image")
    await _send_media(
        matrix_user, room, pdf2, "notes.pdf", "application/pdf", "m.file", body="Notes attached"
    )
    await _send_media(
        matrix_user, room, mp42, "take2.mp4", "video/mp4", "m.video",
        info={"w": 640, "h": 360, "duration": 4000},
    )  # fmt: skip
    await _send_media(
        matrix_user, room, ogg2, "Voice message.ogg", "audio/ogg", "m.audio",
        info={"duration": 1500},
        extra={"org.matrix.msc1767.audio": {"duration": 1500}, "org.matrix.msc3245.voice": {}},
    )  # fmt: skip

    async def four_from_me():
        found = await _teams_media_from(control, chat["id"], me["mri"])
        return found if len(found) >= 4 else None

    image_m, file_m, video_m, voice_m = await wait_for(four_from_me)
    cid = chat["id"]

    assert image_m["message"]["messagetype"] == "RichText/Html"
    assert "http://schema.skype.com/AMSImage" in image_m["message"]["content"]
    assert (image_m["attachment"].width, image_m["attachment"].height) == (64, 48)
    await _check_ams(
        control, image_m["attachment"].object_id, "imgpsh",
        name="drawing.png", data=png2, mime="image/png", chat_id=cid,
    )  # fmt: skip

    # With a caption, the file card goes inside an HTML body with the caption after it.
    assert "Notes attached" in file_m["message"]["content"]
    assert isinstance(file_m["attachment"], UriObject)
    assert file_m["attachment"].type == "File.1"
    assert file_m["attachment"].original_name == "notes.pdf"
    assert file_m["attachment"].file_size == len(pdf2)
    await _check_ams(
        control, file_m["attachment"].object_id, "original",
        name="notes.pdf", data=pdf2, mime="application/pdf", chat_id=cid,
    )  # fmt: skip

    assert video_m["message"]["messagetype"] == "RichText/Media_Video"
    assert video_m["attachment"].duration_ms == 4000
    await _check_ams(
        control, video_m["attachment"].object_id, "original",
        name="take2.mp4", data=mp42, mime="video/mp4", chat_id=cid,
    )  # fmt: skip

    assert voice_m["message"]["messagetype"] == "RichText/Media_AudioMsg"
    assert voice_m["attachment"].duration_ms == 1500
    await _check_ams(
        control, voice_m["attachment"].object_id, "original",
        name="Voice message.ogg", data=ogg2, mime="audio/ogg", chat_id=cid,
    )  # fmt: skip

    # Each carries a fresh clientmessageid, and the echoes are not bridged back.
    ids = {m["message"]["clientmessageid"] for m in (image_m, file_m, video_m, voice_m)}
    assert len(ids) == 4
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>after media</p>")
    await matrix_user.wait_for_message(room, sender=ada_puppet, body="after media")
    assert len(media_from_ada()) == 4
    others = [
        e
        for e in matrix_user.messages(room)
        if e.sender not in (ada_puppet, matrix_user.user_id)
        and str(getattr(e.content.msgtype, "value", "")) in MEDIA_TYPES
    ]
    assert others == []


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_caption_and_two_attachments_become_three_events(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg, me, ada, chat, room, direct = await _setup(
        synapse, backend, bridge_factory, control, matrix_user
    )
    ada_puppet = puppet_mxid(reg, ada["mri"])
    first, second = _png(30, 20, 11), _png(40, 10, 12)
    urls = []
    for data, name in ((first, "a.png"), (second, "b.png")):
        obj = await control.ams_upload(
            ada["mri"], data, filename=name,
            type="pish/image", content_type="image/png", conversation=chat["id"],
        )  # fmt: skip
        urls.append((obj["id"], obj["views"]["imgo"]))
    imgs = "".join(
        f'<img itemscope="image" src="{url}" itemtype="http://schema.skype.com/AMSImage"'
        f' id="{oid}" itemid="{oid}" width="100" height="50">'
        for oid, url in urls
    )
    await control.post_message(
        chat["id"], sender=ada["mri"], content=f"<p>Two <b>sketches</b></p><p>{imgs}</p>"
    )

    caption = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="sketches")
    assert caption.content.body == "Two sketches"

    def images():
        return [
            e
            for e in matrix_user.messages(room)
            if e.sender == ada_puppet and str(getattr(e.content.msgtype, "value", "")) == "m.image"
        ]

    await matrix_user.wait_for_event(room, lambda e: len(images()) >= 2)
    ours = [e for e in matrix_user.messages(room) if e.sender == ada_puppet]
    assert len(ours) == 3 and ours[0].event_id == caption.event_id
    one = await _check_arrival(
        matrix_user, ours[1], msgtype="m.image", name="image.png", data=first, mime="image/png"
    )
    two = await _check_arrival(
        matrix_user, ours[2], msgtype="m.image", name="image.png", data=second, mime="image/png"
    )
    assert (one["info"]["w"], one["info"]["h"]) == (30, 20)
    assert (two["info"]["w"], two["info"]["h"]) == (40, 10)

    # A Skype-style picture with a caption (URIObject in an HTML body): caption, then image.
    photo = _png(50, 50, 14)
    await control.post_media(
        chat["id"], ada["mri"], "picture", content_b64=_b64(photo), filename="photo.png",
        content_type="image/png", caption="Look at this",
    )  # fmt: skip
    look = await matrix_user.wait_for_message(room, sender=ada_puppet, body="Look at this")
    pic = await matrix_user.wait_for_message(room, sender=ada_puppet, after=look.event_id)
    await _check_arrival(
        matrix_user, pic, msgtype="m.image", name="photo.png", data=photo, mime="image/png"
    )
    # An inline AMSVideo: the name is the element's text, the duration its data-duration.
    clip = _mp4(15)
    await control.post_media(
        chat["id"], ada["mri"], "video_inline", content_b64=_b64(clip), filename="inline.mp4",
        content_type="video/mp4", width=160, height=90, duration_ms=1250,
    )  # fmt: skip
    vid = await matrix_user.wait_for_message(room, sender=ada_puppet, body="inline.mp4")
    got = await _check_arrival(
        matrix_user, vid, msgtype="m.video", name="inline.mp4", data=clip, mime="video/mp4"
    )
    assert (got["info"]["w"], got["info"]["h"], got["info"]["duration"]) == (160, 90, 1250)

    # A SharePoint file is a link with its name and size.
    await control.post_media(
        chat["id"], ada["mri"], "sharepoint", filename="plan.xlsx", file_size=2048
    )
    link = await matrix_user.wait_for_message(room, sender=ada_puppet, contains="plan.xlsx")
    assert "2.0 KiB" in link.content.body and "https://" in link.content.body

    # In a 1:1 the file is readable by the conversation and named for the peer too.
    dm_room = await _join_dm(matrix_user)
    pdf = _pdf(13)
    await _send_media(matrix_user, dm_room, pdf, "dm.pdf", "application/pdf", "m.file")

    async def sent_in_dm():
        found = await _teams_media_from(control, direct["id"], me["mri"])
        return found[0] if found else None

    sent = await wait_for(sent_in_dm)
    assert sent["message"]["messagetype"] == "RichText/Media_GenericFile"
    await _check_ams(
        control, sent["attachment"].object_id, "original",
        name="dm.pdf", data=pdf, mime="application/pdf", chat_id=direct["id"],
    )  # fmt: skip
    obj = await control.ams_object(sent["attachment"].object_id, include_bytes=False)
    assert ada["mri"] in obj["permissions"]


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_over_limit_files_get_a_notice_on_the_sending_side(
    backend, synapse, bridge_factory, control, matrix_user
):
    limit = 64 * 1024
    reg, me, ada, chat, room, direct = await _setup(
        synapse, backend, bridge_factory, control, matrix_user,
        overrides={"bridge.max_file_size": limit, "bridge.message_status_events": True},
    )  # fmt: skip
    ada_puppet = puppet_mxid(reg, ada["mri"])

    # Teams -> Matrix: a file card declaring its size, and an inline image that does not
    # (the download stops at the limit).
    await control.post_media(chat["id"], ada["mri"], "file", size=100_000, filename="huge.bin")
    notice = await matrix_user.wait_for_notice(room, contains="huge.bin")
    assert notice.sender == ada_puppet
    assert "97.7 KiB" in notice.content.body and "64.0 KiB" in notice.content.body
    big_png = _png(200, 200, 21)
    assert len(big_png) > limit
    posted = await control.post_media(
        chat["id"], ada["mri"], "image", content_b64=_b64(big_png), content_type="image/png"
    )
    notice = await matrix_user.wait_for_notice(room, contains="image", after=notice.event_id)
    assert notice.sender == ada_puppet
    assert "64.0 KiB" in notice.content.body
    downloads = (await control.ams_object(posted["object_id"], include_bytes=False))["downloads"]
    assert downloads  # it was tried, and stopped: no upload to Matrix followed

    # Matrix -> Teams: refused with the failure notice and a FAIL_PERMANENT send status, both when the
    # size is declared and when it only shows while downloading.
    data = os.urandom(100_000)
    declared = await _send_media(
        matrix_user, room, data, "declared.bin", "application/octet-stream", "m.file"
    )
    undeclared = await _send_media(
        matrix_user, room, data, "undeclared.bin", "application/octet-stream", "m.file",
        declare_size=False,
    )  # fmt: skip
    for event_id, name in ((declared, "declared.bin"), (undeclared, "undeclared.bin")):
        evt = await matrix_user.wait_for_event(
            room, lambda e, eid=event_id: send_status_about(e, eid) is not None
        )
        status = send_status_about(evt, event_id)
        assert status["status"] == "FAIL_PERMANENT"
        assert name in status["error"] and "too large" in status["error"]
        await matrix_user.wait_for_notice(room, contains=name)
    mine = [o for o in await control.ams_objects() if o["owner"] == me["mri"]]
    assert mine == []
    assert await _teams_media_from(control, chat["id"], me["mri"]) == []
    # The bridge still works afterwards.
    await matrix_user.send_text(room, "still here")
    await wait_for(lambda: _has_text(control, chat["id"], me["mri"], "still here"))


async def _has_text(control, chat_id: str, mri: str, text: str) -> bool:
    return any(
        str(m.get("from", "")).endswith(mri) and text in (m.get("content") or "")
        for m in await control.list_messages(chat_id)
    )
