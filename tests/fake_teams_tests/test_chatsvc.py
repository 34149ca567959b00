"""Chat service REST: conversations, threads, messages, paging, auth, middle tier."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest

from tests.fake_teams import ControlClient

from .helpers import chat_base, login


def _skype(login_) -> dict[str, str]:
    return {"Authentication": f"skypetoken={login_.skype_token}"}


async def _get(http, url: str, headers: dict[str, str], **params) -> dict:
    async with http.get(url, headers=headers, params=params or None) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _post(http, base: str, chat_id: str, headers: dict[str, str], body: dict):
    url = f"{base}/users/ME/conversations/{quote(chat_id, safe='')}/messages"
    async with http.post(url, headers=headers, json=body) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_conversation_list_paging_and_shapes(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    alan = await control.create_user("Alan Turing", "personal")
    one = await control.create_chat("one_to_one", [ada["mri"], grace["mri"]])
    low, high = sorted([ada["object_id"], grace["object_id"]])
    assert one["id"] == f"19:{low}_{high}@unq.gbl.spaces"
    fed = await control.create_chat("one_to_one", [ada["mri"], alan["mri"]])
    assert fed["id"].startswith("19:uni01_") and fed["id"].endswith("@thread.v2")
    meeting = await control.create_chat("meeting", [ada["mri"], grace["mri"]], "Standup")
    assert meeting["id"].startswith("19:meeting_")
    groups = [
        await control.create_chat("group", [ada["mri"], grace["mri"]], f"Topic {i}")
        for i in range(3)
    ]
    await control.create_chat("group", [grace["mri"], alan["mri"]])  # not Ada's
    for chat in [one, *groups]:
        await control.post_message(chat["id"], grace["mri"], f"<p>in {chat['id']}</p>")
        # Arrival times are milliseconds: two chats posted to in the same one tie.
        await asyncio.sleep(0.005)

    me = await login(sim, http, control, ada["mri"])
    url = f"{chat_base(me)}/users/ME/conversations"
    seen: list[dict] = []
    page = await _get(
        http,
        url,
        _skype(me),
        pageSize="2",
        view="msnp24Equivalent",
        targetType="Passport|Skype|Lync|Thread|PSTN|Agent",
        startTime="0",
    )
    pages = 1
    seen += page["conversations"]
    while page["_metadata"].get("backwardLink"):
        page = await _get(http, page["_metadata"]["backwardLink"], _skype(me))
        seen += page["conversations"]
        pages += 1
    assert pages == 3
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == 6
    versions = [c["version"] for c in seen]
    assert versions == sorted(versions, reverse=True)
    assert ids[0] == groups[-1]["id"]  # most recent activity first

    by_id = {c["id"]: c for c in seen}
    dm = by_id[one["id"]]["threadProperties"]
    assert dm["uniquerosterthread"] == "true" and dm["productThreadType"] == "OneToOneChat"
    group = by_id[groups[0]["id"]]
    assert group["threadProperties"]["topic"] == "Topic 0"
    assert group["threadProperties"]["membercount"] == "2"
    assert json.loads(group["threadProperties"]["members"]) == [ada["mri"], grace["mri"]]
    assert isinstance(group["lastUpdatedMessageId"], int)
    assert group["lastMessage"]["content"] == f"<p>in {groups[0]['id']}</p>"
    assert by_id[meeting["id"]]["threadProperties"]["productThreadType"] == "Meeting"
    assert by_id[meeting["id"]]["lastMessage"] == {}

    # syncState: only what changed since.
    sync = page["_metadata"]["syncState"]
    assert (await _get(http, sync, _skype(me)))["conversations"] == []
    await control.post_message(groups[0]["id"], grace["mri"], "<p>new</p>")
    changed = (await _get(http, sync, _skype(me)))["conversations"]
    assert [c["id"] for c in changed] == [groups[0]["id"]]

    single = await _get(http, f"{url}/{quote(one['id'], safe='')}", _skype(me))
    assert single["id"] == one["id"]
    thread = await _get(
        http,
        f"{chat_base(me)}/threads/{quote(groups[0]['id'], safe='')}",
        _skype(me),
        view="msnp24Equivalent",
    )
    assert {m["id"]: m["friendlyName"] for m in thread["members"]} == {
        ada["mri"]: "Ada Lovelace",
        grace["mri"]: "Grace Hopper",
    }
    assert thread["properties"]["topic"] == "Topic 0"


async def test_post_and_list_messages(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    edsger = await control.create_user("Edsger Dijkstra")
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]], "Paging")
    me = await login(sim, http, control, ada["mri"])
    base = chat_base(me)
    minimal = {
        "clientmessageid": "1715842512004123",
        "content": "<p>hello</p>",
        "messagetype": "RichText/Html",
        "contenttype": "text",
        "imdisplayname": "Ada",
    }
    status, headers, body = await _post(http, base, chat["id"], _skype(me), minimal)
    assert status == 201
    first_id = str(body["OriginalArrivalTime"])
    assert headers["Location"].endswith(f"/messages/{first_id}")
    web_body = {
        "id": "-1",
        "type": "Message",
        "conversationid": chat["id"],
        "conversationLink": f"blah/{chat['id']}",
        "from": ada["mri"],
        "fromUserId": ada["mri"],
        "composetime": "2026-01-01T00:00:00.000Z",
        "originalarrivaltime": "2026-01-01T00:00:00.000Z",
        "content": "<p>web</p>",
        "messagetype": "RichText/Html",
        "contenttype": "Html",
        "imdisplayname": "Ada Lovelace",
        "clientmessageid": "99",
        "call_id": "",
        "state": 0,
        "version": "0",
        "post_type": "Standard",
        "cross_post_channels": [],
        "properties": {
            "importance": "",
            "subject": "",
            "title": "",
            "cards": "[]",
            "links": "[]",
            "mentions": "[]",
            "files": "[]",
            "format_variant": "TEAMS",
        },
    }
    x_headers = {"X-Skypetoken": me.skype_token}
    status, _, body = await _post(http, base, chat["id"], x_headers, web_body)
    assert status == 201 and body["OriginalArrivalTime"] > int(first_id)
    for i in range(23):
        await control.post_message(chat["id"], grace["mri"], f"<p>{i}</p>")
    typing = {"content": "", "contenttype": "Application/Message", "messagetype": "Control/Typing"}
    status, _, _ = await _post(http, base, chat["id"], _skype(me), typing)
    assert status == 201

    stored = await control.list_messages(chat["id"])
    assert len(stored) == 25
    ids = [int(m["id"]) for m in stored]
    assert ids == sorted(set(ids)) and str(ids[0]) == first_id
    assert stored[0]["clientmessageid"] == "1715842512004123"

    url = f"{base}/users/ME/conversations/{quote(chat['id'], safe='')}/messages"
    page = await _get(http, url, _skype(me), pageSize="10", startTime="0", view="msnp24Equivalent")
    got = page["messages"]
    while page["_metadata"].get("backwardLink"):
        page = await _get(http, page["_metadata"]["backwardLink"], _skype(me))
        got += page["messages"]
    assert [int(m["id"]) for m in got] == sorted(ids, reverse=True)
    newest = got[0]
    assert newest["from"].endswith(f"/users/ME/contacts/{grace['mri']}")
    assert newest["conversationLink"].endswith(f"/users/ME/conversations/{chat['id']}")
    assert newest["id"] == newest["version"]
    assert len(newest["originalarrivaltime"].split(".")[1]) == 8  # 7 digits + Z
    for key in (
        "sequenceId",
        "clientmessageid",
        "type",
        "messagetype",
        "contenttype",
        "content",
        "imdisplayname",
        "conversationid",
        "composetime",
        "amsreferences",
        "properties",
    ):
        assert key in newest

    since = await _get(http, url, _skype(me), startTime=str(ids[-3]))
    assert [int(m["id"]) for m in since["messages"]] == ids[-1:-4:-1]

    other = await login(sim, http, control, edsger["mri"])
    status, _, body = await _post(http, base, chat["id"], _skype(other), minimal)
    assert status == 403 and "errorCode" in body


async def test_edit_delete_react_and_horizon(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
    me = await login(sim, http, control, ada["mri"])
    base = chat_base(me)
    _, _, body = await _post(
        http, base, chat["id"], _skype(me), {"content": "<p>v1</p>", "messagetype": "RichText/Html"}
    )
    mid = body["OriginalArrivalTime"]
    msg_url = f"{base}/users/ME/conversations/{quote(chat['id'], safe='')}/messages/{mid}"
    async with http.put(
        msg_url,
        headers=_skype(me),
        json={"content": "<p>v2</p>", "messagetype": "RichText/Html", "contenttype": "text"},
    ) as resp:
        assert resp.status == 200
    theirs = await control.post_message(chat["id"], grace["mri"], "<p>mine</p>")
    async with http.put(
        msg_url.replace(str(mid), theirs["id"]),
        headers=_skype(me),
        json={"content": "x", "messagetype": "Text"},
    ) as resp:
        assert resp.status == 403
    async with http.put(
        f"{msg_url}/properties",
        params={"name": "emotions"},
        headers=_skype(me),
        json={"emotions": {"key": "like", "value": 1769429691997}},
    ) as resp:
        assert resp.status == 200
    stored = (await control.list_messages(chat["id"]))[0]
    assert stored["content"] == "<p>v2</p>" and "edittime" in stored["properties"]
    assert stored["properties"]["emotions"][0]["key"] == "like"
    assert stored["properties"]["emotions"][0]["users"][0]["mri"] == ada["mri"]
    async with http.delete(msg_url, params={"behavior": "softDelete"}, headers=_skype(me)) as resp:
        assert resp.status == 200
    stored = (await control.list_messages(chat["id"]))[0]
    assert stored["content"] == "" and "deletetime" in stored["properties"]
    async with http.put(
        f"{base}/users/ME/conversations/{quote(chat['id'], safe='')}/properties",
        params={"name": "consumptionhorizon"},
        headers=_skype(me),
        json={"consumptionhorizon": f"{mid};{mid};{mid}"},
    ) as resp:
        assert resp.status == 200


async def test_afd_prefix_and_self_properties(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    me = await login(sim, http, control, ada["mri"])
    afd = me.authz["regionGtms"]["chatServiceAfd"] + "/v1"
    props = await _get(http, f"{afd}/users/ME/properties", _skype(me))
    assert props["skypeName"] == "orgid:" + ada["object_id"]
    assert json.loads(props["userDetails"])["name"] == "Ada Lovelace"


@pytest.mark.parametrize("sim_options", [{"error_bodies": "random"}])
async def test_unauthorized_with_missing_unknown_or_expired_skype_token(sim, http, control):
    ada = await control.create_user("Ada Lovelace")
    me = await login(sim, http, control, ada["mri"])
    url = f"{chat_base(me)}/users/ME/conversations"
    for headers in ({}, {"Authentication": "skypetoken=bogus"}, {"X-Skypetoken": "bogus"}):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401
    async with http.get(url, headers=_skype(me)) as resp:
        assert resp.status == 200
    await control.expire_skype_token(ada["mri"])
    bodies = set()
    for _ in range(8):
        async with http.get(url, headers=_skype(me)) as resp:
            assert resp.status == 401
            bodies.add(resp.content_type)
    assert len(bodies) > 1  # JSON and non-JSON bodies both occur


@pytest.mark.parametrize("sim_options", [{"consumer_middle_tier": "refuse"}])
async def test_middle_tier_profiles(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    alan = await control.create_user("Alan Turing", "personal")
    work = await login(sim, http, control, ada["mri"])
    mt = work.authz["regionGtms"]["middleTier"]
    async with http.post(
        f"{mt}/beta/users/fetchShortProfile",
        params={"isMailAddress": "false"},
        json=["", ada["mri"], alan["mri"], "8:orgid:unknown"],
        headers={"Authorization": f"Bearer {work.access_token}"},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["type"] == "Microsoft.SkypeSpaces.MiddleTier.Models.IUserIdentity"
    assert {p["mri"]: p["displayName"] for p in body["value"]} == {
        ada["mri"]: "Ada Lovelace",
        alan["mri"]: "Alan Turing",
    }

    personal = await login(sim, http, control, alan["mri"], kind="personal")
    mt = personal.authz["regionGtms"]["middleTier"]
    async with http.post(
        f"{mt}/beta/users/fetchShortProfile",
        json=[ada["mri"]],
        headers={
            "Authorization": f"Bearer {personal.access_token}",
            "X-Skypetoken": personal.skype_token,
        },
    ) as resp:
        assert resp.status == 403
