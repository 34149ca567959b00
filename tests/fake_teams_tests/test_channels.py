"""Teams and channels: conversation shapes, root posts, thread replies addressed by
`<channel>;messageid=<root>`, listings, refused thread ids, and the pushed links."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from tests.fake_teams import ControlClient

from .helpers import RawTrouter, chat_base, login

THREADS = "Passport|Skype|Lync|Thread|PSTN|Agent"


def _seg(value: str) -> str:
    return quote(value, safe="")


async def _team(control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    team = await control.create_team("Contoso", [ada["mri"], grace["mri"]], ["Design"])
    general, design = team["channels"]
    return ada, grace, team, general["id"], design["id"]


async def test_a_team_lists_as_its_channels(sim, http, control: ControlClient):
    ada, _grace, team, general, design = await _team(control)
    assert general == team["id"] and general.endswith("@thread.tacv2")
    assert [c["name"] for c in team["channels"]] == ["General", "Design"]
    me = await login(sim, http, control, ada["mri"])
    headers = {"Authentication": f"skypetoken={me.skype_token}"}
    url = f"{chat_base(me)}/users/ME/conversations"
    async with http.get(url, headers=headers, params={"targetType": THREADS}) as resp:
        listed = {c["id"]: c for c in (await resp.json())["conversations"]}
    props = listed[design]["threadProperties"]
    assert props["threadType"] == "topic"
    assert props["productThreadType"] == "TeamsStandardChannel"
    assert props["topicThreadTopic"] == "Design"
    assert props["spaceThreadTopic"] == "Contoso"
    assert props["spaceId"] == team["id"]
    assert "members" not in props
    general_props = listed[general]["threadProperties"]
    assert general_props["threadType"] == "space"
    assert general_props["productThreadType"] == "TeamsTeam"
    assert "topicThreadTopic" not in general_props
    async with http.get(f"{chat_base(me)}/threads/{_seg(design)}", headers=headers) as resp:
        thread = await resp.json()
    assert thread["properties"]["topicThreadTopic"] == "Design"
    assert len(thread["members"]) == 2


async def test_thread_replies_post_list_and_push(sim, http, control: ControlClient):
    ada, grace, _team_, _general, design = await _team(control)
    me = await login(sim, http, control, ada["mri"])
    trouter = RawTrouter(http, sim, me.skype_token, str(uuid.uuid4()))
    await trouter.connect()
    await trouter.register()
    headers = {"Authentication": f"skypetoken={me.skype_token}"}
    root = await control.post_message(design, grace["mri"], "<p>root</p>")
    _, pushed = await trouter.next_event()
    assert pushed["resource"]["conversationLink"].endswith(
        f"/conversations/{design};messageid={root['id']}"
    )

    thread = f"{design};messageid={root['id']}"
    url = f"{chat_base(me)}/users/ME/conversations/{_seg(thread)}/messages"
    body = {"clientmessageid": "123", "content": "<p>reply</p>", "messagetype": "RichText/Html"}
    async with http.post(url, headers=headers, json=body) as resp:
        assert resp.status == 201, await resp.text()
        reply_id = str((await resp.json())["OriginalArrivalTime"])
    _, pushed = await trouter.next_event()
    res = pushed["resource"]
    assert res["id"] == reply_id and res["clientmessageid"] == "123"
    assert res["conversationid"] == design
    assert res["conversationLink"] == (
        f"https://notifications.skype.net/v1/users/ME/conversations/{thread}"
    )
    other = await control.post_message(design, grace["mri"], "<p>second root</p>")
    await control.post_message(design, grace["mri"], "<p>in other</p>", thread_root=other["id"])

    # The channel lists roots and replies together; a thread id lists that thread alone.
    channel_url = f"{chat_base(me)}/users/ME/conversations/{_seg(design)}/messages"
    async with http.get(channel_url, headers=headers) as resp:
        listed = (await resp.json())["messages"]
    assert [m["content"] for m in listed] == [
        "<p>in other</p>",
        "<p>second root</p>",
        "<p>reply</p>",
        "<p>root</p>",
    ]
    assert listed[2]["conversationLink"].endswith(f";messageid={root['id']}")
    async with http.get(url, headers=headers) as resp:
        assert [m["id"] for m in (await resp.json())["messages"]] == [reply_id, root["id"]]

    # Replies hang off root posts only; chats have no threads.
    bad = f"{design};messageid={reply_id}"
    bad_url = f"{chat_base(me)}/users/ME/conversations/{_seg(bad)}/messages"
    async with http.post(bad_url, headers=headers, json=body) as resp:
        assert resp.status == 400
    with pytest.raises(Exception, match="only channel posts have threads"):
        chat = await control.create_chat("group", [ada["mri"], grace["mri"]])
        posted = await control.post_message(chat["id"], ada["mri"], "<p>x</p>")
        await control.post_message(chat["id"], ada["mri"], "<p>y</p>", thread_root=posted["id"])
    await trouter.close()


@pytest.mark.parametrize("sim_options", [{"channel_thread_ids": "fields"}])
async def test_replies_can_name_their_root_in_fields(sim, http, control: ControlClient):
    ada, grace, _team_, _general, design = await _team(control)
    root = await control.post_message(design, grace["mri"], "<p>root</p>")
    await control.post_message(design, grace["mri"], "<p>r</p>", thread_root=root["id"])
    me = await login(sim, http, control, ada["mri"])
    url = f"{chat_base(me)}/users/ME/conversations/{_seg(design)}/messages"
    async with http.get(url, headers={"Authentication": f"skypetoken={me.skype_token}"}) as r:
        reply, listed_root = (await r.json())["messages"]
    assert reply["conversationLink"].endswith(f"/conversations/{design}")
    assert reply["rootMessageId"] == reply["parentMessageId"] == root["id"]
    assert "rootMessageId" not in listed_root


async def test_changes_to_thread_messages_take_the_channel_id(sim, http, control):
    ada, grace, _team_, _general, design = await _team(control)
    me = await login(sim, http, control, ada["mri"])
    headers = {"Authentication": f"skypetoken={me.skype_token}"}
    root = await control.post_message(design, grace["mri"], "<p>root</p>")
    reply = await control.post_message(design, ada["mri"], "<p>r</p>", thread_root=root["id"])
    base = f"{chat_base(me)}/users/ME/conversations"
    thread = _seg(f"{design};messageid={root['id']}")
    edit = {"content": "<p>edited</p>", "messagetype": "RichText/Html"}
    async with http.put(f"{base}/{thread}/messages/{reply['id']}", headers=headers, json=edit) as r:
        assert r.status == 400
    async with http.put(
        f"{base}/{_seg(design)}/messages/{reply['id']}", headers=headers, json=edit
    ) as resp:
        assert resp.status == 200
    emotion = {"emotions": {"key": "like", "value": 1}}
    url = f"{base}/{_seg(design)}/messages/{reply['id']}/properties?name=emotions"
    async with http.put(url, headers=headers, json=emotion) as resp:
        assert resp.status == 200
    stored = {m["id"]: m for m in await control.list_messages(design)}[reply["id"]]
    assert stored["content"] == "<p>edited</p>"
    assert stored["properties"]["emotions"][0]["key"] == "like"
