"""End to end against the Teams simulator: login, REST, Trouter push, sending."""

from __future__ import annotations

import json
import uuid

import aiohttp

from teams_bridge.teams import (
    ConversationKind,
    Credentials,
    TrouterState,
)

from .conftest import Sim, logged_in_client
from .recorder import Recorder


async def test_login_connect_list_push_and_send(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada = await sim.control.create_user("Ada Lovelace")
    bob = await sim.control.create_user("Bob Builder")
    rotated: list[Credentials] = []
    client = await logged_in_client(http_session, sim, ada["mri"], rotated=rotated)
    me = await client.connect()
    assert me.mri == ada["mri"]
    assert me.display_name == "Ada Lovelace"
    assert rotated and rotated[-1].refresh_token == client.credentials.refresh_token

    group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]], topic="Plans")
    direct = await sim.control.create_chat("one_to_one", [ada["mri"], bob["mri"]])
    await sim.control.post_message(group["id"], bob["mri"], "<p>before</p>")

    conversations = {c.id: c for c in await client.list_conversations(50)}
    assert conversations[group["id"]].kind is ConversationKind.GROUP
    assert conversations[group["id"]].topic == "Plans"
    assert conversations[direct["id"]].kind is ConversationKind.ONE_TO_ONE
    assert set(conversations[direct["id"]].members) >= {ada["mri"], bob["mri"]}

    thread = await client.get_thread(group["id"])
    assert {m.mri for m in thread.members} == {ada["mri"], bob["mri"]}
    one = await client.get_thread(direct["id"])
    assert {m.mri for m in one.members} >= {bob["mri"]}

    rec = Recorder()
    client.start_trouter(rec.on_event, rec.on_state, rec.on_resync)
    try:
        await rec.wait(lambda: any(s is TrouterState.CONNECTED for s, _ in rec.states))
        await sim.control.wait_for_registration(ada["mri"])
        await rec.wait(lambda: rec.resyncs >= 1)

        await sim.control.post_message(group["id"], bob["mri"], "<p>hello from bob</p>")
        await rec.wait(
            lambda: any(m.content == "<p>hello from bob</p>" for m in rec.messages(group["id"]))
        )
        incoming = next(
            m for m in rec.messages(group["id"]) if m.content == "<p>hello from bob</p>"
        )
        assert incoming.sender_mri == bob["mri"]
        assert incoming.sender_name == "Bob Builder"
        assert incoming.message_type == "RichText/Html"

        client_message_id = str(uuid.uuid4().int)[:19]
        await sim.control.clear_requests()
        sent_id = await client.send_message(
            group["id"], "<p>reply</p>", client_message_id=client_message_id, display_name="Ada"
        )
        assert sent_id.isdigit()
        posts = await sim.control.requests(path_contains="/messages", method="POST")
        body = (
            json.loads(posts[-1]["body"])
            if isinstance(posts[-1].get("body"), str)
            else posts[-1].get("json")
        )
        assert body["messagetype"] == "RichText/Html"
        assert body["contenttype"] == "text"
        assert body["clientmessageid"] == client_message_id
        assert body["content"] == "<p>reply</p>"
        await rec.wait(
            lambda: any(m.client_message_id == client_message_id for m in rec.messages(group["id"]))
        )
        echo = next(
            m for m in rec.messages(group["id"]) if m.client_message_id == client_message_id
        )
        assert echo.id == sent_id
        assert echo.sender_mri == ada["mri"]

        history = await client.list_messages(group["id"])
        contents = [m.content for m in history if m.message_type == "RichText/Html"]
        assert contents[-3:] == ["<p>before</p>", "<p>hello from bob</p>", "<p>reply</p>"]
        newer = await client.list_messages(group["id"], after_id=incoming.id)
        assert [m.id for m in newer] == [sent_id]

        profiles = await client.fetch_profiles([bob["mri"], ada["mri"]])
        assert profiles[bob["mri"]].display_name == "Bob Builder"
    finally:
        await client.stop()
    assert rec.states[-1] == (TrouterState.STOPPED, None)
