"""Middle-tier profile pictures: cookie auth as the web client sends it, 404 without one."""

from __future__ import annotations

import hashlib

import aiohttp

from tests.fake_teams import ControlClient

from .helpers import login

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _cookie(token: str) -> dict[str, str]:
    return {
        "Cookie": f"authtoken=Bearer={token}&Origin=https://teams.microsoft.com",
        "Referer": "https://teams.microsoft.com/",
    }


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str], **params):
    async with http.get(url, headers=headers, params=params or None) as resp:
        return resp.status, resp.content_type, await resp.read()


async def test_pictures_need_the_cookie_and_follow_the_control_switch(
    sim, http, control: ControlClient
):
    ada = await control.create_user("Ada Lovelace")
    bob = await control.create_user("Bob Babbage")
    me = await login(sim, http, control, ada["mri"])
    mt = me.authz["regionGtms"]["middleTier"]
    url = f"{mt}/beta/users/{ada['object_id']}/profilepicturev2/{bob['mri']}"

    # Nobody has a picture yet: 404, for a known and an unknown user alike.
    assert (await _get(http, url, _cookie(me.access_token), size="HR96x96"))[0] == 404
    unknown = f"{mt}/beta/users/{ada['object_id']}/profilepicturev2/8:orgid:unknown"
    assert (await _get(http, unknown, _cookie(me.access_token)))[0] == 404

    answer = await control.set_picture(bob["mri"], PNG, "image/png")
    assert answer["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (await control.list_users())[1]["has_picture"] is True
    status, content_type, body = await _get(http, url, _cookie(me.access_token), size="HR96x96")
    assert (status, content_type, body) == (200, "image/png", PNG)

    # The token goes in the cookie: a Bearer header, a Skype token, a wrong or missing
    # cookie are refused; so is another user's object id in the path and an unknown size.
    assert (await _get(http, url, {"Authorization": f"Bearer {me.access_token}"}))[0] == 401
    assert (await _get(http, url, {"X-Skypetoken": me.skype_token}))[0] == 401
    assert (await _get(http, url, _cookie(me.skype_token)))[0] == 401
    assert (await _get(http, url, {}))[0] == 401
    other = f"{mt}/beta/users/{bob['object_id']}/profilepicturev2/{bob['mri']}"
    assert (await _get(http, other, _cookie(me.access_token)))[0] == 403
    assert (await _get(http, url, _cookie(me.access_token), size="HR1x1"))[0] == 400

    # Changed, then removed.
    await control.set_picture(bob["mri"], PNG[::-1], "image/jpeg")
    assert (await _get(http, url, _cookie(me.access_token)))[1:] == ("image/jpeg", PNG[::-1])
    await control.remove_picture(bob["mri"])
    assert (await _get(http, url, _cookie(me.access_token)))[0] == 404
    await control.expire_access_token(ada["mri"])
    assert (await _get(http, url, _cookie(me.access_token)))[0] == 401


async def test_chat_picture_is_a_thread_property(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    bob = await control.create_user("Bob Babbage")
    chat = await control.create_chat("group", [ada["mri"], bob["mri"]], "Pictured")
    obj = await control.ams_upload(ada["mri"], PNG, conversation=chat["id"], view="avatar")
    summary = await control.set_chat_picture(chat["id"], obj["id"], by=ada["mri"])
    expected = f"URL@{sim.url}/v1/objects/{obj['id']}/views/avatar_fullsize"
    assert summary["picture"] == expected
    assert (await control.get_chat(chat["id"]))["thread"]["properties"]["picture"] == expected
    summary = await control.set_chat_picture(chat["id"], None, by=bob["mri"])
    assert summary["picture"] is None
    assert "picture" not in (await control.get_chat(chat["id"]))["thread"]["properties"]
