"""Control API extras: request recording, faults, roster changes, implicit 1:1 chats."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from tests.fake_teams import ControlClient

from .helpers import RawTrouter, chat_base, login


async def test_requests_are_recorded_and_faults_injected(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    me = await login(sim, http, control, ada["mri"])
    await control.clear_requests()
    url = f"{chat_base(me)}/users/ME/properties"
    headers = {"Authentication": f"skypetoken={me.skype_token}"}
    await control.add_fault("/users/ME/properties", status=429, retry_after=2, method="GET")
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
        assert (await resp.json())["errorCode"] == 429
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200
    recorded = await control.requests(path_contains="/users/ME/properties", method="GET")
    assert len(recorded) == 2
    assert recorded[0]["headers"]["Authentication"].startswith("skypetoken=")
    assert await control.requests(path_contains="/users/ME/properties", method="POST") == []
    login_posts = await control.requests(path_contains="/oauth2/v2.0/token")
    assert login_posts == []  # cleared before
    await control.clear_requests()
    assert await control.requests() == []


async def test_first_message_creates_work_one_to_one(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    me = await login(sim, http, control, ada["mri"])
    low, high = sorted([ada["object_id"], grace["object_id"]])
    chat_id = f"19:{low}_{high}@unq.gbl.spaces"
    url = f"{chat_base(me)}/users/ME/conversations/{quote(chat_id, safe='')}/messages"
    async with http.post(
        url,
        headers={"X-Skypetoken": me.skype_token},
        json={"content": "hi", "messagetype": "Text", "contenttype": "text"},
    ) as resp:
        assert resp.status == 201
    chat = await control.get_chat(chat_id)
    assert chat["kind"] == "one_to_one" and chat["message_count"] == 1


async def test_thread_create_and_roster_events(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    edsger = await control.create_user("Edsger Dijkstra")
    me = await login(sim, http, control, ada["mri"])
    trouter = RawTrouter(http, sim, me.skype_token, str(uuid.uuid4()))
    await trouter.connect()
    await trouter.register()
    body = {
        "members": [{"id": grace["mri"], "role": "User"}, {"id": ada["mri"], "role": "Admin"}],
        "properties": {"threadType": "chat", "topic": "Made by REST"},
    }
    async with http.post(
        f"{chat_base(me)}/threads", json=body, headers={"X-Skypetoken": me.skype_token}
    ) as resp:
        assert resp.status == 201
        chat_id = resp.headers["Location"].rsplit("/", 1)[1]
    _, event = await trouter.next_event("ThreadUpdate")
    assert event["resource"]["id"] == chat_id

    await control.add_member(chat_id, edsger["mri"], by=ada["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/AddMember"
    assert edsger["mri"] in event["resource"]["content"]
    _, event = await trouter.next_event("ThreadUpdate")
    assert edsger["mri"] in [m["id"] for m in event["resource"]["members"]]

    await control.set_topic(chat_id, "Renamed", by=grace["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert "<value>Renamed</value>" in event["resource"]["content"]
    await control.remove_member(chat_id, edsger["mri"], by=ada["mri"])
    _, event = await trouter.next_event("NewMessage")
    assert event["resource"]["messagetype"] == "ThreadActivity/DeleteMember"

    msg = await control.post_message(chat_id, grace["mri"], "<p>react to me</p>")
    await control.react(chat_id, msg["id"], ada["mri"], "heart")
    _, event = await trouter.next_event("MessageUpdate")
    assert event["resource"]["properties"]["emotions"][0]["key"] == "heart"
    await control.edit_message(chat_id, msg["id"], grace["mri"], "<p>edited</p>")
    _, event = await trouter.next_event("MessageUpdate")
    assert event["resource"]["content"] == "<p>edited</p>" and "skypeeditedid" in event["resource"]
    await control.delete_message(chat_id, msg["id"], grace["mri"])
    _, event = await trouter.next_event("MessageUpdate")
    assert event["resource"]["content"] == "" and "deletetime" in event["resource"]["properties"]
    await trouter.close()
