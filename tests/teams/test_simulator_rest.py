"""REST behaviour against the simulator: paging, token expiry, faults, flavours, profiles."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from teams_bridge.teams import (
    AccountKind,
    AuthClient,
    ConversationKind,
    LoginDeclined,
    ReloginRequired,
    TeamsClient,
    TeamsError,
)
from teams_bridge.teams.chat import ChatApi
from teams_bridge.teams.http import Response

from .conftest import Sim, SimFactory, device_login, logged_in_client
from .fakes import FAST_RETRY


async def two_users(sim: Sim, kind: str = "work") -> tuple[dict[str, Any], dict[str, Any]]:
    ada = await sim.control.create_user("Ada Lovelace", kind=kind)
    bob = await sim.control.create_user("Bob Builder", kind=kind)
    return ada, bob


async def test_conversation_pages_are_followed_with_small_pages(
    http_session: aiohttp.ClientSession, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("teams_bridge.teams.chat.CONVERSATION_PAGE", 2)
    ada, bob = await two_users(sim)
    created = [
        (await sim.control.create_chat("group", [ada["mri"], bob["mri"]]))["id"] for _ in range(5)
    ]
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    await sim.control.clear_requests()
    conversations = await client.list_conversations(limit=50)
    assert [c.id for c in conversations] == list(reversed(created))
    assert len(await sim.control.requests(path_contains="/users/ME/conversations")) >= 3


async def test_message_history_pages_and_cursor(
    http_session: aiohttp.ClientSession, sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("teams_bridge.teams.chat.MESSAGE_PAGE", 4)
    ada, bob = await two_users(sim)
    group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
    for n in range(10):
        await sim.control.post_message(group["id"], bob["mri"], f"<p>{n}</p>")
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()

    def texts(messages: list[Any]) -> list[str]:
        return [m.content for m in messages if m.message_type == "RichText/Html"]

    newest = await client.list_messages(group["id"], limit=6)
    assert texts(newest) == [f"<p>{n}</p>" for n in range(4, 10)]
    ids = [m.id for m in newest]
    assert ids == sorted(ids, key=int)

    everything = await client.list_messages(group["id"], limit=100)
    by_text = {m.content: m for m in everything}
    cursor = by_text["<p>2</p>"].id
    after = await client.list_messages(group["id"], after_id=cursor, limit=3)
    assert texts(after) == ["<p>3</p>", "<p>4</p>", "<p>5</p>"]
    rest = await client.list_messages(group["id"], after_id=after[-1].id, limit=100)
    assert texts(rest) == [f"<p>{n}</p>" for n in range(6, 10)]
    assert await client.list_messages(group["id"], after_id=rest[-1].id) == []


async def test_expired_skype_token_is_reminted_on_401(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, bob = await two_users(sim)
    group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    await sim.control.expire_skype_token(ada["mri"])
    await sim.control.expire_access_token(ada["mri"])
    thread = await client.get_thread(group["id"])
    assert thread.id == group["id"]
    profiles = await client.fetch_profiles([bob["mri"]])
    assert profiles[bob["mri"]].display_name == "Bob Builder"


async def test_revoked_refresh_token_requires_relogin(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, _bob = await two_users(sim)
    client = await logged_in_client(http_session, sim, ada["mri"])
    await sim.control.revoke(ada["mri"])
    with pytest.raises(ReloginRequired):
        await client.connect()


async def test_old_refresh_token_is_rejected_after_rotation(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, _bob = await two_users(sim)
    creds = await device_login(http_session, sim, ada["mri"])
    auth = AuthClient(http_session, sim.endpoints, policy=FAST_RETRY)
    rotated = await auth.login_with_refresh_token(creds.refresh_token, AccountKind.ENTERPRISE)
    assert rotated.refresh_token != creds.refresh_token
    with pytest.raises(ReloginRequired):
        await auth.login_with_refresh_token(creds.refresh_token, AccountKind.ENTERPRISE)


async def test_declined_device_code(http_session: aiohttp.ClientSession, sim: Sim) -> None:
    auth = AuthClient(http_session, sim.endpoints, policy=FAST_RETRY)
    flow = await auth.start_device_code(AccountKind.ENTERPRISE)
    await sim.control.decline_device_code(flow.user_code)
    with pytest.raises(LoginDeclined):
        await auth.poll_device_code(flow)


async def test_device_code_interval_is_honoured(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    sim = await sim_factory(device_code_interval=1)
    ada, _bob = await two_users(sim)
    auth = AuthClient(http_session, sim.endpoints, policy=FAST_RETRY)
    flow = await auth.start_device_code(AccountKind.ENTERPRISE)
    assert flow.interval == 1
    await sim.control.approve_device_code(flow.user_code, ada["mri"])
    creds = await auth.poll_device_code(flow)
    assert creds.user_object_id == ada["object_id"]


async def test_rate_limits_and_server_errors_are_retried(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, bob = await two_users(sim)
    group = await sim.control.create_chat("group", [ada["mri"], bob["mri"]])
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    await sim.control.add_fault("/messages", status=429, count=2, method="POST", retry_after=0)
    await sim.control.add_fault("/messages", status=503, count=1, method="POST")
    message_id = await client.send_message(
        group["id"], "<p>x</p>", client_message_id=str(uuid.uuid4().int)[:18], display_name="Ada"
    )
    assert message_id.isdigit()
    await sim.control.add_fault("/threads/", status=500, count=10)
    with pytest.raises(TeamsError) as info:
        await client.get_thread(group["id"])
    assert info.value.status == 500


@pytest.mark.parametrize("error_bodies", ["json", "text", "html"])
async def test_errors_with_any_body_become_teams_errors(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory, error_bodies: str
) -> None:
    sim = await sim_factory(error_bodies=error_bodies)
    ada, _bob = await two_users(sim)
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    with pytest.raises(TeamsError) as info:
        await client.get_thread("19:doesnotexist@thread.v2")
    assert info.value.status in (403, 404)


async def test_one_to_one_without_members_in_the_list(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    sim = await sim_factory(omit_one_to_one_members="always")
    ada, bob = await two_users(sim)
    direct = await sim.control.create_chat("one_to_one", [ada["mri"], bob["mri"]])
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    conv = {c.id: c for c in await client.list_conversations()}[direct["id"]]
    assert conv.kind is ConversationKind.ONE_TO_ONE
    assert set(conv.members) == {ada["mri"], bob["mri"]}


@pytest.mark.parametrize("shapes", ["native", "swapped"])
async def test_personal_account_end_to_end(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory, shapes: str
) -> None:
    sim = await sim_factory(authz_shapes=shapes, consumer_middle_tier="refuse")
    ada, bob = await two_users(sim, kind="personal")
    client = await logged_in_client(http_session, sim, ada["mri"], kind=AccountKind.PERSONAL)
    assert client.credentials.kind is AccountKind.PERSONAL
    me = await client.connect()
    assert me.mri == ada["mri"]
    direct = await sim.control.create_chat("one_to_one", [ada["mri"], bob["mri"]])
    conv = {c.id: c for c in await client.list_conversations()}[direct["id"]]
    assert conv.kind is ConversationKind.ONE_TO_ONE
    await sim.control.post_message(direct["id"], bob["mri"], "<p>hi</p>")
    messages = await client.list_messages(direct["id"])
    assert messages[-1].sender_name == "Bob Builder"
    assert await client.fetch_profiles([bob["mri"]]) == {}


async def test_profiles_under_resolved_users(
    http_session: aiohttp.ClientSession, sim_factory: SimFactory
) -> None:
    sim = await sim_factory(middle_tier_value_key="resolvedUsers")
    ada, bob = await two_users(sim)
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    profiles = await client.fetch_profiles([bob["mri"], "8:orgid:bad/id"])
    assert set(profiles) == {bob["mri"]}
    assert profiles[bob["mri"]].email == bob["email"]


async def test_hostile_ids_are_refused_before_any_request(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, _bob = await two_users(sim)
    client: TeamsClient = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    with pytest.raises(ValueError):
        await client.list_messages("19:a/../../users@thread.v2")


async def test_profile_pictures_with_the_cookie_and_none_without(
    http_session: aiohttp.ClientSession, sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    ada, bob = await two_users(sim)
    picture = b"\xff\xd8\xff\xe0" + bytes(range(200))
    await sim.control.set_picture(bob["mri"], picture, "image/jpeg")
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    await sim.control.clear_requests()

    got = await client.fetch_profile_picture(bob["mri"])
    assert got is not None and got.data == picture and got.content_type == "image/jpeg"
    assert await client.fetch_profile_picture(ada["mri"]) is None  # 404: no picture
    (req, _) = await sim.control.requests(path_contains="/profilepicturev2/")
    assert req["path"].endswith(f"/beta/users/{ada['object_id']}/profilepicturev2/{bob['mri']}")
    assert req["query"] == {"size": "HR96x96"}
    assert req["headers"]["Cookie"].startswith("authtoken=Bearer=")
    assert req["headers"]["Cookie"].endswith("&Origin=https://teams.microsoft.com")
    assert req["headers"]["Referer"] == "https://teams.microsoft.com/"
    assert "Authorization" not in req["headers"] and "X-Skypetoken" not in req["headers"]

    # An expired token is refreshed once; a failure is an error, never "no picture".
    await sim.control.expire_access_token(ada["mri"])
    assert (await client.fetch_profile_picture(bob["mri"], size="HR196x196")).data == picture
    await sim.control.add_fault("profilepicturev2", status=403, count=1)
    with pytest.raises(TeamsError):
        await client.fetch_profile_picture(bob["mri"])
    with pytest.raises(ValueError):
        await client.fetch_profile_picture("8:orgid:a/../../b")
    secrets = [v for values in (await sim.control.tokens()).values() for v in values]
    assert not [s for s in secrets if s in caplog.text]


async def test_starting_chats_and_searching_people(
    http_session: aiohttp.ClientSession, sim: Sim
) -> None:
    ada, bob = await two_users(sim)
    carol = await sim.control.create_user("Carol Shaw", kind="work")
    client = await logged_in_client(http_session, sim, ada["mri"])
    await client.connect()
    await sim.control.clear_requests()

    # A 1:1: the peer as User, ourselves as Admin, a fixed unique roster (§4.3).
    direct = await client.create_chat([bob["mri"]], one_to_one=True)
    (req,) = await sim.control.requests(path_contains="/threads", method="POST")
    body = json.loads(req["body"])
    assert body["members"] == [
        {"id": bob["mri"], "role": "User"},
        {"id": ada["mri"], "role": "Admin"},
    ]
    assert body["properties"]["threadType"] == "chat"
    assert body["properties"]["uniquerosterthread"] == "true"
    assert body["properties"]["fixedRoster"] == "true"
    assert (await sim.control.get_chat(direct))["kind"] == "one_to_one"
    conversation = await client.get_conversation(direct)
    assert conversation.kind is ConversationKind.ONE_TO_ONE

    # A group with a topic; its id comes from the Location header.
    group = await client.create_chat([bob["mri"], carol["mri"]], topic="Plans")
    made = await sim.control.get_chat(group)
    assert made["kind"] == "group" and made["topic"] == "Plans"
    assert {m["mri"] for m in made["members"]} == {ada["mri"], bob["mri"], carol["mri"]}

    # People search: by name or address, never the searcher; blank text asks nothing.
    await sim.control.clear_requests()
    assert [p.mri for p in await client.search_users("carol")] == [carol["mri"]]
    assert [p.mri for p in await client.search_users(bob["email"].upper())] == [bob["mri"]]
    assert await client.search_users("lovelace") == []
    assert await client.search_users("   ") == []
    searches = await sim.control.requests(path_contains="/users/searchV2", method="POST")
    assert [s["body"] for s in searches] == ["carol", bob["email"].upper(), "lovelace"]


def test_created_chat_id_from_any_answer_shape() -> None:
    def answer(body: bytes, location: str | None = None) -> Response:
        headers = CIMultiDictProxy(CIMultiDict({"Location": location} if location else {}))
        return Response(201, headers, body)

    read = ChatApi._created_thread_id
    assert read(answer(b"{}", "https://x/v1/threads/19:abc@thread.v2")) == "19:abc@thread.v2"
    assert read(answer(b'{"id": "19:abc@thread.v2"}')) == "19:abc@thread.v2"
    wrapped = b'{"threadResource": {"id": "19:abc@thread.v2", "type": "Thread"}}'
    assert read(answer(wrapped)) == "19:abc@thread.v2"
    assert read(answer(b"")) is None
    assert read(answer(b'{"id": "19:a/../b@thread.v2"}')) is None
