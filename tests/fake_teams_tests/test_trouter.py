"""Trouter: allocate, socket.io handshake, websocket, registrar, pushed events, acks."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import quote

import pytest

from tests.fake_teams import ControlClient

from .helpers import RawTrouter, chat_base, decode_body, login


async def _connected(sim, http, control, mri: str, register: bool = True, ttl: int = 86400):
    me = await login(sim, http, control, mri)
    trouter = RawTrouter(http, sim, me.skype_token, str(uuid.uuid4()))
    await trouter.connect()
    if register:
        assert await trouter.register(ttl=ttl) // 100 == 2
    return me, trouter


async def _two_users(control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    grace = await control.create_user("Grace Hopper")
    chat = await control.create_chat("group", [ada["mri"], grace["mri"]], "Push")
    return ada, grace, chat


@pytest.mark.parametrize("sim_options", [{"gzip_bodies": "never"}, {"gzip_bodies": "always"}])
async def test_control_post_arrives_as_request(sim, http, control: ControlClient, sim_options):
    ada, grace, chat = await _two_users(control)
    me, trouter = await _connected(sim, http, control, ada["mri"])
    state = await control.wait_for_registration(ada["mri"])
    assert state["connections"][0]["epid"] == trouter.epid

    posted = await control.post_message(
        chat["id"], grace["mri"], "<p>hello</p>", clientmessageid="4242"
    )
    envelope = await trouter.next_request()
    surl_path = trouter.info["surl"].split(sim.url, 1)[1]
    assert envelope["url"] == surl_path + "messaging"
    assert envelope["method"] == "POST"
    gzipped = envelope["headers"].get("X-Microsoft-Skype-Content-Encoding") == "gzip"
    assert gzipped == (sim_options["gzip_bodies"] == "always")
    event = decode_body(envelope)
    await trouter.reply(envelope)
    assert event["type"] == "EventMessage" and event["resourceType"] == "NewMessage"
    res = event["resource"]
    assert res["id"] == posted["id"] and res["content"] == "<p>hello</p>"
    assert res["clientmessageid"] == "4242"
    assert res["from"] == f"https://notifications.skype.net/v1/users/ME/contacts/{grace['mri']}"
    assert res["conversationLink"].endswith(f"/conversations/{chat['id']}")
    assert not res["conversationLink"].startswith(sim.url)
    await trouter.close()


async def test_sender_gets_its_own_echo(sim, http, control: ControlClient):
    ada, grace, chat = await _two_users(control)
    me, mine = await _connected(sim, http, control, ada["mri"])
    _, theirs = await _connected(sim, http, control, grace["mri"])
    url = f"{chat_base(me)}/users/ME/conversations/{quote(chat['id'], safe='')}/messages"
    async with http.post(
        url,
        headers={"Authentication": f"skypetoken={me.skype_token}"},
        json={
            "clientmessageid": "777000111",
            "content": "<p>echo</p>",
            "messagetype": "RichText/Html",
            "contenttype": "text",
            "imdisplayname": "Ada Lovelace",
        },
    ) as resp:
        assert resp.status == 201
        arrival = (await resp.json())["OriginalArrivalTime"]
    for trouter in (mine, theirs):
        _, event = await trouter.next_event()
        assert event["resource"]["clientmessageid"] == "777000111"
        assert event["resource"]["id"] == str(arrival)

    await control.typing(chat["id"], grace["mri"])
    _, event = await mine.next_event()
    assert event["resource"]["messagetype"] == "Control/Typing"
    assert len(await control.list_messages(chat["id"])) == 1


async def test_no_delivery_without_registration_or_after_expiry(sim, http, control):
    ada, grace, chat = await _two_users(control)
    _, unregistered = await _connected(sim, http, control, ada["mri"], register=False)
    _, short = await _connected(sim, http, control, grace["mri"], ttl=2)
    await control.post_message(chat["id"], grace["mri"], "<p>one</p>")
    _, event = await short.next_event()
    assert event["resource"]["content"] == "<p>one</p>"

    async def expired() -> bool:
        return (await control.connections())[grace["mri"]]["registrations"][0]["expired"]

    async with asyncio.timeout(30):
        while not await expired():
            await asyncio.sleep(0.05)
    await control.post_message(chat["id"], grace["mri"], "<p>two</p>")
    # Registered (again), both sockets get the next message first: nothing was held back
    # for them, nor sent to them unregistered.
    assert await unregistered.register() // 100 == 2
    assert await short.register() // 100 == 2
    await control.post_message(chat["id"], grace["mri"], "<p>three</p>")
    for trouter in (unregistered, short):
        _, event = await trouter.next_event()
        assert event["resource"]["content"] == "<p>three</p>"


@pytest.mark.parametrize("sim_options", [{"redelivery_timeout": 0.3, "gzip_bodies": "random"}])
async def test_unanswered_request_is_redelivered_in_order(sim, http, control: ControlClient):
    ada, grace, chat = await _two_users(control)
    _, trouter = await _connected(sim, http, control, ada["mri"])
    await control.post_message(chat["id"], grace["mri"], "<p>first</p>")
    await control.post_message(chat["id"], grace["mri"], "<p>second</p>")
    first = await trouter.next_request()
    second = await trouter.next_request()
    assert decode_body(first)["resource"]["content"] == "<p>first</p>"
    assert decode_body(second)["resource"]["content"] == "<p>second</p>"
    await trouter.reply(second)
    again = await trouter.next_request()
    assert again["id"] == first["id"]
    assert decode_body(again)["resource"]["content"] == "<p>first</p>"
    await trouter.reply(again)
    # Both answered: nothing is left to redeliver. (A reply slower than the redelivery
    # timeout may cross one more copy on the wire; that is not a failure.)
    async with asyncio.timeout(30):
        while (conn := (await control.connections())[ada["mri"]]["connections"][0])["pending"]:
            await asyncio.sleep(0.05)
    assert conn["delivered"] == 2 and conn["redelivered"] >= 1


async def test_socketio_frames(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    me, trouter = await _connected(sim, http, control, ada["mri"], register=False)
    auth = {
        "name": "user.authenticate",
        "args": [
            {
                "headers": {
                    "X-Ms-Test-User": "False",
                    "Authorization": f"Bearer {me.access_token}",
                    "X-MS-Migration": "True",
                },
                "connectparams": trouter.info["connectparams"],
            }
        ],
    }
    await trouter.send("5:::" + json.dumps(auth))
    await trouter.send('5:1+::{"name":"user.activity","args":[{"state":"active","cv":"x.0.1"}]}')
    assert await trouter.next_frame() == "6:::1+[]"
    await trouter.send('5:2+::{"name":"ping"}')
    assert await trouter.next_frame() == '6:::2+["pong"]'
    await trouter.send("2::")
    assert await trouter.next_frame() == "2::"
    conn = (await control.connections())[ada["mri"]]["connections"][0]
    assert conn["authenticated"] is True

    await control.message_loss(ada["mri"])
    frame = await trouter.next_frame()
    assert frame.startswith("5:1+::") and "trouter.message_loss" in frame


@pytest.mark.parametrize("sim_options", [{"server_heartbeat_interval": 0.2}])
async def test_server_heartbeat_and_handshake_auth(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    me, trouter = await _connected(sim, http, control, ada["mri"], register=False)
    assert await trouter.next_frame() == "2::"
    async with http.post(sim.endpoints()["trouter_enterprise"], params={"epid": "x"}) as resp:
        assert resp.status == 401
    async with http.post(sim.endpoints()["registrar_enterprise"], json={}) as resp:
        assert resp.status == 401


async def test_reconnect_requires_reregistration(sim, http, control: ControlClient):
    ada, grace, chat = await _two_users(control)
    me, old = await _connected(sim, http, control, ada["mri"])
    await old.close()
    fresh = RawTrouter(http, sim, me.skype_token, old.epid)
    await fresh.connect()
    assert fresh.info["surl"] != old.info["surl"]
    await control.post_message(chat["id"], grace["mri"], "<p>lost</p>")
    assert await fresh.register() // 100 == 2
    await control.post_message(chat["id"], grace["mri"], "<p>found</p>")
    _, event = await fresh.next_event()  # the first event, so "lost" never came
    assert event["resource"]["content"] == "<p>found</p>"


async def test_personal_account_end_to_end(sim, http, control: ControlClient):
    alan = await control.create_user("Alan Turing", "personal")
    barbara = await control.create_user("Barbara Liskov", "personal")
    chat = await control.create_chat("one_to_one", [alan["mri"], barbara["mri"]])
    me = await login(sim, http, control, alan["mri"], kind="personal")
    base = chat_base(me)
    assert base == f"{sim.url}/api/chatsvc/consumer/v1"
    trouter = RawTrouter(http, sim, me.skype_token, str(uuid.uuid4()), consumer=True)
    await trouter.connect()
    assert await trouter.register() // 100 == 2
    url = f"{base}/users/ME/conversations/{quote(chat['id'], safe='')}/messages"
    async with http.post(
        url,
        headers={"Authentication": f"skypetoken={me.skype_token}"},
        json={
            "clientmessageid": "31337",
            "content": "hi",
            "messagetype": "Text",
            "contenttype": "text",
        },
    ) as resp:
        assert resp.status == 201
        assert resp.headers["Location"].startswith(f"{base}/users/ME/conversations/")
    _, event = await trouter.next_event()
    assert event["resource"]["clientmessageid"] == "31337"
    regs = (await control.connections())[alan["mri"]]["registrations"]
    assert len(regs) == 1 and regs[0]["live"]
    await trouter.close()


@pytest.mark.parametrize("sim_options", [{"server_heartbeat_interval": 1.0}])
async def test_answer_to_a_server_heartbeat_is_not_echoed(sim, http, control: ControlClient):
    ada = await control.create_user("Ada Lovelace")
    _me, trouter = await _connected(sim, http, control, ada["mri"], register=False)
    assert await trouter.next_frame() == "2::"
    await trouter.send("2::")  # the client's answer to the server's heartbeat
    # Frames are handled and answered in order: the pong to a later ping comes next, with
    # no heartbeat before it.
    await trouter.send('5:9+::{"name":"ping"}')
    assert await trouter.next_frame() == '6:::9+["pong"]'
