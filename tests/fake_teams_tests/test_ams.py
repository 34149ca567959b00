"""AMS on the simulator (teams-protocol.md §7), spoken raw: objects, streamed content,
views, status, permissions, and the control routes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fake_teams import ControlClient, FakeTeams

from .helpers import Login, login


def _ams(me: Login) -> str:
    return me.authz["regionGtms"]["ams"].rstrip("/")


def _auth(me: Login) -> dict[str, str]:
    return {"Authorization": f"skype_token {me.skype_token}"}


async def _create(
    http: aiohttp.ClientSession, me: Login, body: dict, headers: dict | None = None
) -> tuple[int, dict]:
    async with http.post(
        f"{_ams(me)}/v1/objects", json=body, headers=_auth(me) if headers is None else headers
    ) as resp:
        return resp.status, await resp.json(content_type=None) if resp.status < 300 else {}


async def _setup(sim: FakeTeams, http: aiohttp.ClientSession, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    bob = await control.create_user("Bob Example")
    eve = await control.create_user("Eve Outsider")
    chat = await control.create_chat("group", [ada["mri"], bob["mri"]], "Media")
    logins = [await login(sim, http, control, u["mri"]) for u in (ada, bob, eve)]
    return chat, *logins


async def test_region_gtms_points_ams_at_the_simulator(sim, http, control):
    ada = await control.create_user("Ada")
    me = await login(sim, http, control, ada["mri"])
    assert _ams(me) == sim.url
    personal = await control.create_user("Pat", "personal")
    assert _ams(await login(sim, http, control, personal["mri"], "personal")) == sim.url


async def test_create_upload_download_status_and_permissions(sim, http, control):
    chat, ada, bob, eve = await _setup(sim, http, control)
    status, created = await _create(
        http,
        ada,
        {
            "type": "pish/image",
            "filename": "cat.png",
            "sharingMode": "Inline",
            "permissions": {chat["id"]: ["read"]},
        },
    )
    assert status == 201
    oid = created["id"]
    assert oid.startswith("0-") and len(oid.split("-")) == 4

    # status before content
    status_url = f"{_ams(ada)}/v1/objects/{oid}/views/imgpsh_fullsize/status"
    async with http.get(status_url, headers=_auth(ada)) as resp:
        assert resp.status == 200
        assert (await resp.json())["view_state"] == "none"

    data = os.urandom(300_000)
    put = f"{_ams(ada)}/v1/objects/{oid}/content/imgpsh"
    async with http.put(
        put, data=data, headers={**_auth(bob), "Content-Type": "image/png"}
    ) as resp:
        assert resp.status == 403  # only the owner uploads
    async with http.put(put, data=data, headers={"Content-Type": "image/png"}) as resp:
        assert resp.status == 401
    async with http.put(
        put, data=data, headers={**_auth(ada), "Content-Type": "image/png"}
    ) as resp:
        assert resp.status == 201

    for view in ("imgo", "imgpsh_fullsize"):
        async with http.get(
            f"{_ams(bob)}/v1/objects/{oid}/views/{view}", headers=_auth(bob)
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "image/png"
            assert int(resp.headers["Content-Length"]) == len(data)
            assert await resp.read() == data
    # the cookie works too
    async with http.get(
        f"{_ams(bob)}/v1/objects/{oid}/views/imgo",
        headers={"Cookie": f"skypetoken_asm={bob.skype_token}"},
    ) as resp:
        assert resp.status == 200
    async with http.get(f"{_ams(bob)}/v1/objects/{oid}/views/imgpsh", headers=_auth(bob)) as resp:
        assert resp.status == 400
    async with http.get(f"{_ams(bob)}/v1/objects/{oid}/views/imgo") as resp:
        assert resp.status == 403  # no token
    async with http.get(f"{_ams(eve)}/v1/objects/{oid}/views/imgo", headers=_auth(eve)) as resp:
        assert resp.status == 403  # not in the conversation
    async with http.get(
        f"{_ams(bob)}/v1/objects/{oid}/views/imgo", headers={"Authorization": "skype_token nope"}
    ) as resp:
        assert resp.status == 401  # a bad token can be refreshed
    async with http.get(
        f"{_ams(bob)}/v1/objects/0-weu-d1-{'0' * 32}/views/imgo", headers=_auth(bob)
    ) as resp:
        assert resp.status == 404
    async with http.get(status_url, headers=_auth(bob)) as resp:
        body = await resp.json()
        assert body["view_state"] == "ready" and body["content_state"] == "ready"
        assert body["view_length"] == len(data)
        assert body["status_location"].endswith("/views/imgpsh_fullsize/status")

    # membership counts at read time
    await control.add_member(chat["id"], eve.mri)
    async with http.get(f"{_ams(eve)}/v1/objects/{oid}/views/imgo", headers=_auth(eve)) as resp:
        assert resp.status == 200

    back = await control.ams_object(oid)
    assert back["owner"] == ada.mri and back["type"] == "pish/image"
    assert back["filename"] == "cat.png" and back["permissions"] == {chat["id"]: ["read"]}
    assert base64.b64decode(back["contents"]["imgpsh"]["data_b64"]) == data
    assert back["contents"]["imgpsh"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert await control.ams_content(oid, "imgpsh") == data


async def test_create_needs_a_skype_token_and_a_sane_body(sim, http, control):
    _chat, ada, _bob, _eve = await _setup(sim, http, control)
    status, _ = await _create(http, ada, {"type": "sharing/file", "filename": "a"}, headers={})
    assert status == 401
    status, _ = await _create(
        http,
        ada,
        {"type": "sharing/file"},
        headers={"Authentication": f"skypetoken={ada.skype_token}"},
    )
    assert status == 401  # the chat-service header is not AMS auth
    status, _ = await _create(http, ada, {"filename": "a"})
    assert status == 400
    status, _ = await _create(http, ada, {"type": "sharing/file", "permissions": {"x": "read"}})
    assert status == 400


async def test_mri_permissions_and_views_of_files(sim, http, control):
    _chat, ada, bob, eve = await _setup(sim, http, control)
    status, created = await _create(
        http,
        ada,
        {"type": "sharing/file", "filename": "a.txt", "permissions": {bob.mri: ["read"]}},
    )
    oid = created["id"]
    async with http.put(
        f"{_ams(ada)}/v1/objects/{oid}/content/original",
        data=b"hello",
        headers={**_auth(ada), "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 201
    for view in ("original", "video", "audio"):
        async with http.get(
            f"{_ams(bob)}/v1/objects/{oid}/views/{view}", headers=_auth(bob)
        ) as resp:
            assert resp.status == 200 and await resp.read() == b"hello"
    async with http.get(
        f"{_ams(bob)}/v1/objects/{oid}/views/thumbnail", headers=_auth(bob)
    ) as resp:
        assert resp.status == 404  # files get no generated thumbnail here
    async with http.get(f"{_ams(eve)}/v1/objects/{oid}/views/original", headers=_auth(eve)) as resp:
        assert resp.status == 403


@pytest.mark.parametrize("sim_options", [{"ams_content_length": "never"}])
async def test_downloads_without_content_length(sim, http, control):
    chat, ada, bob, _eve = await _setup(sim, http, control)
    up = await control.ams_upload(ada.mri, size=1_000_000, seed=3, conversation=chat["id"])
    async with http.get(up["views"]["imgo"], headers=_auth(bob)) as resp:
        assert resp.status == 200
        assert "Content-Length" not in resp.headers
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        data = await resp.read()
    assert hashlib.sha256(data).hexdigest() == up["sha256"] and len(data) == 1_000_000


async def _pattern(total: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
    block = os.urandom(chunk)
    sent = 0
    i = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield i.to_bytes(8, "big") + block[8:n] if n > 8 else block[:n]
        sent += n
        i += 1


async def test_200_mb_streams_through_disk(sim, http, control):
    chat, ada, bob, _eve = await _setup(sim, http, control)
    _, created = await _create(
        http,
        ada,
        {"type": "sharing/file", "filename": "big.bin", "permissions": {chat["id"]: ["read"]}},
    )
    oid = created["id"]
    total = 200 * 1024 * 1024
    sent_digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        async for chunk in _pattern(total):
            sent_digest.update(chunk)
            yield chunk

    started = time.monotonic()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    async with http.put(
        f"{_ams(ada)}/v1/objects/{oid}/content/original",
        data=body(),
        headers={**_auth(ada), "Content-Length": str(total), "Content-Type": "application/zip"},
    ) as resp:
        assert resp.status == 201
    info = await control.ams_object(oid)  # too big to inline
    assert info["contents"]["original"]["size"] == total
    assert "data_b64" not in info["contents"]["original"]
    assert info["contents"]["original"]["sha256"] == sent_digest.hexdigest()
    # nothing of it was kept by the request recorder
    recorded = await control.requests(path_contains=f"/objects/{oid}/content", method="PUT")
    assert recorded and recorded[0]["body"] == ""

    got = hashlib.sha256()
    size = 0
    async with http.get(f"{_ams(bob)}/v1/objects/{oid}/views/original", headers=_auth(bob)) as resp:
        assert int(resp.headers["Content-Length"]) == total
        async for chunk in resp.content.iter_chunked(1024 * 1024):
            got.update(chunk)
            size += len(chunk)
    assert size == total and got.hexdigest() == sent_digest.hexdigest()
    # neither side held the body: the peak resident size grew far less than 200 MB
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown < 64 * 1024, f"peak RSS grew by {grown} KiB"
    assert time.monotonic() - started < 30


async def test_a_short_body_is_refused(sim, http, control):
    chat, ada, _bob, _eve = await _setup(sim, http, control)
    _, created = await _create(http, ada, {"type": "sharing/file", "permissions": {}})
    url = f"{_ams(ada)}/v1/objects/{created['id']}/content/original"

    async def short() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise RuntimeError("source failed")

    with pytest.raises(aiohttp.ClientError):
        async with http.put(url, data=short(), headers={**_auth(ada), "Content-Length": "100"}):
            pass
    info = await control.ams_object(created["id"])
    assert info["contents"] == {}


async def test_control_media_messages_in_every_format(sim, http, control):
    chat, ada, bob, _eve = await _setup(sim, http, control)
    formats = ["image", "picture", "file", "video", "video_inline", "voice", "sharepoint"]
    for fmt in formats:
        posted = await control.post_media(
            chat["id"],
            bob.mri,
            fmt,
            filename=f"x-{fmt}.bin",
            width=64,
            height=48,
            duration_ms=2990,
            content_b64=base64.b64encode(b"payload").decode(),
        )
        msg = posted["message"]
        assert msg["content"] == posted["content"]
        if fmt == "sharepoint":
            files = json.loads(msg["properties"]["files"])
            assert files[0]["fileName"] == "x-sharepoint.bin"
            continue
        oid = posted["object_id"]
        assert msg["amsreferences"] == [oid] and oid in msg["content"]
        # Ada, a member, can read what Bob uploaded through the message
        view = {"image": "imgo", "picture": "imgo"}.get(fmt, "original")
        async with http.get(
            f"{_ams(ada)}/v1/objects/{oid}/views/{view}", headers=_auth(ada)
        ) as resp:
            assert resp.status == 200 and await resp.read() == b"payload"
    types = [m["messagetype"] for m in await control.list_messages(chat["id"])]
    assert types[-7:] == [
        "RichText/Html",
        "RichText/UriObject",
        "RichText/Media_GenericFile",
        "RichText/Media_Video",
        "RichText/Html",
        "RichText/Media_AudioMsg",
        "RichText/Html",
    ]
    captioned = await control.post_media(chat["id"], bob.mri, "file", caption="see <b>this</b>")
    assert captioned["messagetype"] == "RichText/Html"
    assert captioned["content"].endswith("<p>see <b>this</b></p>")


async def test_content_lives_in_a_temp_dir_removed_on_stop(http):
    fake = FakeTeams(seed=2)
    await fake.start()
    try:
        local = ControlClient(fake.url, http)
        ada = await local.create_user("Ada")
        up = await local.ams_upload(ada["mri"], b"abc")
        directory = fake.ams.directory
        assert [p.name for p in directory.iterdir()] == [f"{up['id']}.imgpsh"]
    finally:
        await fake.stop()
    assert not directory.exists()
