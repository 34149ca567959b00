"""The AMS media client against the simulator: uploads, downloads, limits, streaming,
and the attachments of media messages as Teams clients post them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from teams_bridge.teams import (
    AmsImage,
    AmsVideo,
    MediaError,
    MediaKind,
    MediaTooLarge,
    ServiceUrls,
    SharePointFile,
    TeamsClient,
    UriObject,
    file_message,
    image_message,
    iter_file,
    parse_attachments,
    parse_media,
    voice_message,
)
from teams_bridge.teams.authz import SkypeToken
from teams_bridge.teams.media import AmsApi

from .conftest import Sim, SimFactory, logged_in_client
from .fakes import FAST_RETRY

MB = 1024 * 1024


@dataclass
class Room:
    sim: Sim
    chat: str
    ada: TeamsClient
    bob: TeamsClient
    eve: TeamsClient  # not a member
    users: dict[str, dict[str, Any]]


async def make_room(session: aiohttp.ClientSession, sim: Sim) -> Room:
    users = {n: await sim.control.create_user(n) for n in ("Ada", "Bob", "Eve")}
    chat = await sim.control.create_chat("group", [users["Ada"]["mri"], users["Bob"]["mri"]])
    clients = []
    for name in ("Ada", "Bob", "Eve"):
        client = await logged_in_client(session, sim, users[name]["mri"])
        await client.connect()
        clients.append(client)
    ada, bob, eve = clients
    return Room(sim, chat["id"], ada, bob, eve, users)


@pytest.fixture
async def room(http_session: aiohttp.ClientSession, sim: Sim) -> Room:
    return await make_room(http_session, sim)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cid() -> str:
    return str(uuid.uuid4().int)[:18]


async def test_five_megabyte_round_trip(room: Room) -> None:
    data = os.urandom(5 * MB)
    uploaded = await room.ada.upload_media(
        MediaKind.FILE, "data.bin", room.chat, chunks_of(data), len(data), "application/zip"
    )
    assert uploaded.url == f"{room.sim.server.url}/v1/objects/{uploaded.object_id}"

    stored = await room.sim.control.ams_object(uploaded.object_id, include_bytes=False)
    assert stored["type"] == "sharing/file" and stored["filename"] == "data.bin"
    assert stored["permissions"] == {room.chat: ["read"]}
    assert stored["owner"] == room.users["Ada"]["mri"]
    assert stored["contents"]["original"]["sha256"] == sha(data)
    assert stored["contents"]["original"]["content_type"] == "application/zip"

    digest = hashlib.sha256()
    async with room.bob.download(uploaded.object_id, "original", max_size=5 * MB) as dl:
        assert dl.size == len(data) and dl.content_type == "application/zip"
        async for chunk in dl:
            assert len(chunk) <= 256 * 1024
            digest.update(chunk)
    assert digest.hexdigest() == sha(data)
    # by URL, iterated without a context manager
    by_url = hashlib.sha256()
    async for chunk in room.bob.download(uploaded.view_url("original"), max_size=5 * MB):
        by_url.update(chunk)
    assert by_url.hexdigest() == sha(data)

    status = await room.bob.ams_status(uploaded.object_id, "original")
    assert status.ready and status.view_length == len(data)


async def test_images_go_to_imgpsh_and_come_back_from_the_image_views(room: Room) -> None:
    data = os.urandom(100_000)
    oid = await room.ada.create_ams_object("image", "../../cat\x00.png", room.chat)
    assert (await room.ada.ams_status(oid, "imgpsh_fullsize")).view_state == "none"
    await room.ada.upload_ams_content(oid, "imgpsh", data, len(data), "image/png")
    stored = await room.sim.control.ams_object(oid)
    assert stored["type"] == "pish/image" and stored["filename"] == "cat.png"
    assert base64.b64decode(stored["contents"]["imgpsh"]["data_b64"]) == data
    for view in ("imgo", "imgpsh_fullsize", "imgpsh"):  # imgpsh is mapped to imgpsh_fullsize
        async with room.bob.download(oid, view, max_size=MB) as dl:
            assert await dl.read() == data
            assert dl.url is not None and dl.url.endswith(
                "/views/imgo" if view == "imgo" else "/views/imgpsh_fullsize"
            )


async def test_requests_carry_the_ams_headers(room: Room) -> None:
    await room.sim.control.clear_requests()
    oid = await room.ada.create_ams_object(MediaKind.AUDIO, "voice.ogg", room.chat)
    await room.ada.upload_ams_content(oid, "original", chunks_of(b"x" * 1000), 1000, "audio/ogg")
    async with room.bob.download(oid, "audio", max_size=MB) as dl:
        await dl.read()
    sent = await room.sim.control.requests(path_contains="/v1/objects")
    assert [r["method"] for r in sent] == ["POST", "PUT", "GET"]
    for request in sent:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["authorization"].startswith("skype_token ")
        assert headers["user-agent"] == "SkypeOfficialClient/0/0.0.0.0"
        assert headers["x-ms-client-type"] == "SkypeSpacesWeb"
        assert headers["x-ms-client-version"] == "1.0.0.0"
        assert "authentication" not in headers
    assert sent[1]["headers"]["Content-Length"] == "1000"
    body = json.loads(sent[0]["body"])
    assert body["type"] == "sharing/file" and body["permissions"] == {room.chat: ["read"]}


async def test_forbidden_without_token_or_permission(
    room: Room, http_session: aiohttp.ClientSession
) -> None:
    up = await room.sim.control.ams_upload(
        room.users["Ada"]["mri"], b"secret", conversation=room.chat
    )
    async with http_session.get(up["views"]["imgo"]) as resp:
        assert resp.status == 403
    with pytest.raises(MediaError) as err:
        async with room.eve.download(up["id"], "imgo", max_size=MB):
            pass
    assert err.value.status == 403
    with pytest.raises(MediaError) as missing:
        await room.bob.download(f"0-weu-d1-{'a' * 32}", "imgo", max_size=MB).open()
    assert missing.value.status == 404


async def test_too_large_by_content_length_reads_nothing(room: Room) -> None:
    up = await room.sim.control.ams_upload(
        room.users["Ada"]["mri"], size=3 * MB, conversation=room.chat
    )
    download = room.bob.download(up["id"], "imgo", max_size=MB)
    with pytest.raises(MediaTooLarge) as err:
        async with download:
            pass
    assert err.value.size == 3 * MB and err.value.limit == MB
    assert download.received == 0
    # the limit is inclusive
    async with room.bob.download(up["id"], "imgo", max_size=3 * MB) as dl:
        assert len(await dl.read()) == 3 * MB


async def _finished_download(sim: Sim, oid: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 30  # only a failure waits this long
    while asyncio.get_running_loop().time() < deadline:
        downloads = (await sim.control.ams_object(oid, include_bytes=False))["downloads"]
        if downloads and downloads[-1]["finished"]:
            return downloads[-1]
        await asyncio.sleep(0.02)
    raise AssertionError("the server never finished the download")


async def test_too_large_without_content_length_stops_at_the_limit(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    sim = await sim_factory(ams_content_length="never")
    room = await make_room(http_session, sim)
    total = 40 * MB
    up = await sim.control.ams_upload(
        room.users["Ada"]["mri"], size=total, conversation=room.chat, type="sharing/file"
    )
    limit = MB + 17
    seen = 0
    download = room.bob.download(up["id"], "original", max_size=limit)
    with pytest.raises(MediaTooLarge) as err:
        async with download as dl:
            assert dl.size is None
            async for chunk in dl:
                seen += len(chunk)
    assert err.value.size is None
    assert seen <= limit  # the caller never got more than the limit
    assert download.received == limit + 1  # nor did the client read more than one byte past it
    record = await _finished_download(sim, up["id"])
    assert record["content_length"] is False and not record["complete"]
    assert record["bytes_sent"] < total  # the server stopped sending too

    # exactly at the limit works without Content-Length as well
    small = await sim.control.ams_upload(
        room.users["Ada"]["mri"], size=limit, conversation=room.chat
    )
    async with room.bob.download(small["id"], "imgo", max_size=limit) as dl:
        assert hashlib.sha256(await dl.read()).hexdigest() == small["sha256"]


async def test_fifty_megabytes_stream_with_little_memory(room: Room) -> None:
    total = 50 * MB
    chunk = 256 * 1024
    block = os.urandom(chunk)
    sent = hashlib.sha256()
    outstanding = {"max": 0, "now": 0}

    async def source() -> AsyncIterator[bytes]:
        for i in range(total // chunk):
            piece = i.to_bytes(8, "big") + block[8:]
            sent.update(piece)
            yield piece

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        oid = await room.ada.create_ams_object(MediaKind.VIDEO, "film.mp4", room.chat)
        await room.ada.upload_ams_content(oid, "original", source(), total, "video/mp4")
        upload_peak = tracemalloc.get_traced_memory()[1] - baseline

        tracemalloc.reset_peak()
        got = hashlib.sha256()
        async with room.bob.download(oid, "video", max_size=total) as dl:
            async for piece in dl:
                outstanding["now"] = len(piece)
                outstanding["max"] = max(outstanding["max"], len(piece))
                got.update(piece)
        download_peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert got.hexdigest() == sent.hexdigest()
    stored = await room.sim.control.ams_object(oid, include_bytes=False)
    assert stored["contents"]["original"]["sha256"] == sent.hexdigest()
    # client and simulator share this process; both stream, so the peak stays small
    assert upload_peak < 8 * MB, upload_peak
    assert download_peak < 8 * MB, download_peak
    assert outstanding["max"] <= 256 * 1024


async def test_refuses_to_send_the_token_elsewhere(room: Room) -> None:
    await room.sim.control.clear_requests()
    for url in (
        "https://evil.example/v1/objects/0-weu-d3-abc/views/imgo",
        "http://eu-api.asm.skype.com/v1/objects/0-weu-d3-abc/views/imgo",  # not https
        "https://asm.skype.com.evil.example/v1/objects/0-weu-d3-abc/views/imgo",
    ):
        with pytest.raises(MediaError) as err:
            await room.bob.download(url, max_size=MB).open()
        assert err.value.error_code == "untrusted_host"
    with pytest.raises(MediaError):
        await room.bob.download("not a url or id", max_size=MB).open()
    assert await room.bob.media.is_trusted("https://eu-api.asm.skype.com/v1/objects/x")
    assert await room.bob.media.is_trusted("https://eu-prod.asyncgw.teams.microsoft.com/v1/x")
    assert await room.bob.media.is_trusted(f"{room.sim.server.url}/v1/objects/x")
    assert not await room.bob.media.is_trusted("http://127.0.0.1:1/v1/objects/x")
    assert await room.sim.control.requests(path_contains="/v1/objects") == []


async def test_an_expired_token_is_refreshed(room: Room) -> None:
    data = os.urandom(10_000)
    oid = await room.ada.create_ams_object(MediaKind.FILE, "a.bin", room.chat)
    await room.sim.control.expire_skype_token(room.users["Ada"]["mri"])
    await room.ada.upload_ams_content(oid, "original", data, len(data), None)  # bytes: retried
    await room.sim.control.expire_skype_token(room.users["Bob"]["mri"])
    async with room.bob.download(oid, "original", max_size=MB) as dl:
        assert await dl.read() == data
    # a stream cannot be replayed: the upload fails, the next one works
    await room.sim.control.expire_skype_token(room.users["Ada"]["mri"])
    with pytest.raises(MediaError) as err:
        await room.ada.upload_ams_content(oid, "original", chunks_of(data), len(data), None)
    assert err.value.status == 401
    await room.ada.upload_ams_content(oid, "original", chunks_of(data), len(data), None)


async def test_a_source_of_the_wrong_size_is_an_error(room: Room) -> None:
    oid = await room.ada.create_ams_object(MediaKind.FILE, "a.bin", room.chat)
    with pytest.raises(MediaError) as short:
        await room.ada.upload_ams_content(oid, "original", chunks_of(b"x" * 10), 20, None)
    assert short.value.error_code == "size_mismatch"
    with pytest.raises(MediaError) as long:
        await room.ada.upload_ams_content(oid, "original", chunks_of(b"x" * 30), 20, None)
    assert long.value.error_code == "size_mismatch"

    async def failing() -> AsyncIterator[bytes]:
        yield b"x"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        await room.ada.upload_ams_content(oid, "original", failing(), 20, None)
    assert (await room.sim.control.ams_object(oid))["contents"] == {}


async def test_every_posted_media_format_parses_and_downloads(room: Room) -> None:
    bob = room.users["Bob"]["mri"]
    payload = os.urandom(4000)
    expected: dict[str, str] = {}
    for fmt in ("image", "picture", "file", "video", "video_inline", "voice", "sharepoint"):
        posted = await room.sim.control.post_media(
            room.chat,
            bob,
            fmt,
            filename=f"{fmt}.bin",
            width=320,
            height=200,
            duration_ms=2990,
            content_b64=base64.b64encode(payload).decode(),
            caption="look <b>here</b>" if fmt in ("image", "file") else None,
        )
        expected[posted["message"]["id"]] = fmt
    messages = await room.ada.list_messages(room.chat)
    by_format: dict[str, Any] = {}
    for message in messages:
        if message.id in expected:
            fmt = expected[message.id]
            parsed = parse_media(message)
            assert len(parsed.attachments) == 1, fmt
            by_format[fmt] = (parsed.attachments[0], parsed.caption_html, message)

    image, caption, _ = by_format["image"]
    assert isinstance(image, AmsImage) and (image.width, image.height) == (320, 200)
    assert caption == "<p>look <b>here</b></p>"
    picture = by_format["picture"][0]
    assert isinstance(picture, UriObject) and picture.kind is MediaKind.IMAGE
    assert picture.type == "Picture.1" and picture.original_name == "picture.bin"
    assert picture.file_size == len(payload) and picture.width == 320
    file_, file_caption, file_msg = by_format["file"]
    assert isinstance(file_, UriObject) and file_.kind is MediaKind.FILE
    assert file_.original_name == "file.bin" and file_.file_size == len(payload)
    assert file_msg.message_type == "RichText/Html" and file_caption == "<p>look <b>here</b></p>"
    video = by_format["video"][0]
    assert isinstance(video, UriObject) and video.kind is MediaKind.VIDEO
    assert video.duration_ms == 2990 and video.type.startswith("Video.1")
    inline = by_format["video_inline"][0]
    assert isinstance(inline, AmsVideo) and inline.duration_ms == 2990
    assert inline.name == "video_inline.bin" and inline.width == 320
    voice = by_format["voice"][0]
    assert isinstance(voice, UriObject) and voice.kind is MediaKind.AUDIO
    assert voice.duration_ms == 2990 and voice.original_name == "voice.bin"
    sharepoint = by_format["sharepoint"][0]
    assert isinstance(sharepoint, SharePointFile) and sharepoint.file_name == "sharepoint.bin"
    assert sharepoint.url and sharepoint.share_url and sharepoint.share_url.startswith("https://")

    for fmt, (attachment, _caption, _msg) in by_format.items():
        if isinstance(attachment, SharePointFile):
            continue
        ref = attachment.url
        async with room.ada.download(ref, attachment.views[0], max_size=MB) as dl:
            assert await dl.read() == payload, fmt


async def test_builders_round_trip_through_the_service(room: Room) -> None:
    data = os.urandom(20_000)
    base = await room.ada.ams_base()
    image = await room.ada.upload_media("image", "p.png", room.chat, data, len(data), "image/png")
    sent_image = image_message(base, image.object_id, width=40, height=30, caption_html="hi")
    voice = await room.ada.upload_media("audio", "v.ogg", room.chat, data, len(data), "audio/ogg")
    sent_voice = voice_message(
        base, voice.object_id, filename="v.ogg", size=len(data), duration_ms=4200
    )
    doc = await room.ada.upload_media("file", "d.pdf", room.chat, data, len(data), None)
    sent_file = file_message(base, doc.object_id, filename="d.pdf", size=len(data))
    for media in (sent_image, sent_voice, sent_file):
        await room.ada.send_media_message(
            room.chat, media, client_message_id=cid(), display_name="Ada"
        )
    messages = (await room.bob.list_messages(room.chat))[-3:]
    assert [m.message_type for m in messages] == [
        "RichText/Html",
        "RichText/Media_AudioMsg",
        "RichText/Media_GenericFile",
    ]
    attachments = [parse_attachments(m)[0] for m in messages]
    assert isinstance(attachments[0], AmsImage) and attachments[0].object_id == image.object_id
    assert isinstance(attachments[1], UriObject) and attachments[1].duration_ms == 4200
    assert isinstance(attachments[2], UriObject) and attachments[2].original_name == "d.pdf"
    for attachment in attachments:
        assert not isinstance(attachment, SharePointFile)
        async with room.bob.download(attachment.url, attachment.views[0], max_size=MB) as dl:
            assert await dl.read() == data


class _Tokens:
    """A token source for a bare AMS stub: the token changes when one is refused."""

    def __init__(self, ams: str) -> None:
        self.generation = 1
        self.ams = ams

    async def skype(self) -> SkypeToken:
        services = ServiceUrls(chat=f"{self.ams}/v1", ams=self.ams)
        return SkypeToken(f"tok-{self.generation}", 86400, time.monotonic(), None, services)

    async def invalidate_skype_token(self, token: str) -> None:
        if token == f"tok-{self.generation}":
            self.generation += 1


async def test_redirects_retries_and_refresh_against_a_stub(aiohttp_server: Any) -> None:
    seen: list[tuple[str, str]] = []
    other_hits: list[str] = []
    flaky = {"left": 2}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, request.headers.get("Authorization", "")))
        name = request.match_info["oid"]
        if request.headers.get("Authorization") != "skype_token tok-2":
            return web.Response(status=401, text="The provided 'skypetoken' ticket failed")
        if name == "0-a-redirect":
            raise web.HTTPFound(f"/region/v1/objects/0-a-final/views/{request.match_info['view']}")
        if name == "0-a-away":
            raise web.HTTPFound(f"{other.make_url('/v1/objects/0-a-final/views/original')}")
        if name == "0-a-flaky" and flaky["left"] > 0:
            flaky["left"] -= 1
            return web.Response(status=503 if flaky["left"] else 429, headers={"Retry-After": "0"})
        return web.Response(body=b"payload", content_type="application/pdf")

    async def other_handler(request: web.Request) -> web.Response:
        other_hits.append(request.headers.get("Authorization", ""))
        return web.Response(body=b"stolen")

    app = web.Application()
    app.router.add_get("/v1/objects/{oid}/views/{view}", handler)
    app.router.add_get("/region/v1/objects/{oid}/views/{view}", handler)
    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", other_handler)
    server = await aiohttp_server(app)
    other = await aiohttp_server(other_app)
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        api = AmsApi(session, _Tokens(base), policy=FAST_RETRY)
        async with api.download("0-a-plain", "original", max_size=100) as dl:
            assert await dl.read() == b"payload" and dl.content_type == "application/pdf"
        assert [auth for _, auth in seen] == ["skype_token tok-1", "skype_token tok-2"]
        async with api.download("0-a-redirect", "imgo", max_size=100) as dl:
            assert await dl.read() == b"payload"
        assert dl.url is not None and seen[-1][0] == "/region/v1/objects/0-a-final/views/imgo"
        async with api.download(f"{base}/v1/objects/0-a-flaky/views/x", max_size=100) as dl:
            assert await dl.read() == b"payload"
        with pytest.raises(MediaError) as err:
            await api.download("0-a-away", max_size=100).open()
        assert err.value.error_code == "untrusted_host"
        assert other_hits == []


async def test_no_token_in_the_logs(room: Room, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await room.sim.control.expire_skype_token(room.users["Bob"]["mri"])
    up = await room.ada.upload_media("image", "a.png", room.chat, b"x" * 100, 100, "image/png")
    async with room.bob.download(up.url, "imgo", max_size=MB) as dl:
        await dl.read()
    with pytest.raises(MediaError):
        await room.eve.download(up.object_id, "imgo", max_size=MB).open()
    secrets = [v for values in (await room.sim.control.tokens()).values() for v in values]
    assert secrets and "teams.media" in caplog.text
    assert not [s[:6] for s in secrets if s in caplog.text]


async def test_upload_from_a_file(room: Room, tmp_path: Any) -> None:
    path = tmp_path / "doc.bin"
    data = os.urandom(700_000)
    path.write_bytes(data)
    up = await room.ada.upload_media(
        "file", path.name, room.chat, iter_file(path, 100_000), len(data), None
    )
    assert await room.sim.control.ams_content(up.object_id, "original") == data
