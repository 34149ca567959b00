"""The provisioning API, end to end: a bridge manager logs users in, logs them out and starts
chats over HTTP, against the real bridge process, Synapse and the simulator.

The API has the routes and shapes of mautrix-go's bridgev2 provisioning API
(docs/provisioning.md); these tests hold the bridge to them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.helpers import CODE_RE, puppet_mxid, refresh_token_for, wait_for

SECRET = "provisioning-secret-0123456789abcdef"
PREFIX = "/_matrix/provision"


def provisioning(**extra: Any) -> dict[str, Any]:
    return {
        "bridge.provisioning.enabled": True,
        "bridge.provisioning.shared_secret": SECRET,
        **extra,
    }


class Api:
    """A bridge manager: calls the API as `user_id` with the shared secret."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, user_id: str) -> None:
        self.base = base_url + PREFIX
        self.session = session
        self.user_id = user_id

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        user_id: str | None = "",
        token: str | None = SECRET,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        params = dict(query or {})
        if user_id is not None:
            params["user_id"] = user_id or self.user_id
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            return resp.status, data

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, data = await self.call(method, path, body, **kwargs)
        assert status in (200, 201), (method, path, status, data)
        return data

    async def whoami(self) -> dict[str, Any]:
        return await self.ok("GET", "/v3/whoami")


def assert_error(answer: tuple[int, Any], status: int, errcode: str) -> None:
    got_status, body = answer
    assert got_status == status, answer
    assert body["errcode"] == errcode, answer
    assert isinstance(body["error"], str) and body["error"], answer


async def device_code_login(api: Api, control, flow: str, mri: str) -> dict[str, Any]:
    """A whole device-code login through the API; the `complete` step."""
    first = await api.ok("POST", f"/v3/login/start/{flow}")
    assert first["type"] == "display_and_wait"
    code = first["display_and_wait"]["data"]
    waiting = asyncio.create_task(
        api.ok("POST", f"/v3/login/step/{first['login_id']}/{first['step_id']}/display_and_wait")
    )
    await control.approve_device_code(code, mri)
    return await asyncio.wait_for(waiting, 120)


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_device_code_login_whoami_and_logout(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Engines")
    bridge = bridge_factory(overrides=provisioning())
    await bridge.astart()

    async with aiohttp.ClientSession() as session:
        api = Api(reg.url, session, matrix_user.user_id)
        flows = await api.ok("GET", "/v3/login/flows")
        assert [f["id"] for f in flows["flows"]] == [
            "work",
            "personal",
            "refresh-token",
            "refresh-token-personal",
        ]
        assert all(f["name"] and f["description"] for f in flows["flows"])

        who = await api.whoami()
        assert who["logins"] == []
        assert who["bridge_bot"] == reg.bot_mxid
        assert who["homeserver"] == reg.server_name
        assert who["command_prefix"] == "!teams"
        assert who["network"]["displayname"] == "Microsoft Teams"
        assert who["login_flows"] == flows["flows"]
        assert (await api.ok("GET", "/v3/logins")) == {"login_ids": []}

        # The first step: a code to show, and where to enter it.
        first = await api.ok("POST", "/v3/login/start/work")
        assert first["type"] == "display_and_wait"
        assert first["display_and_wait"]["type"] == "code"
        code = first["display_and_wait"]["data"]
        assert code and code in first["instructions"]
        assert "/devicelogin" in first["instructions"]
        process, step_id = first["login_id"], first["step_id"]
        step_path = f"/v3/login/step/{process}/{step_id}"

        # Steps that do not match the process are refused, and it goes on.
        assert_error(
            await api.call("POST", f"/v3/login/step/{process}/other.step/display_and_wait"),
            400,
            "M_BAD_STATE",
        )
        assert_error(await api.call("POST", f"{step_path}/user_input", {}), 400, "M_BAD_STATE")
        assert_error(
            await api.call("POST", f"{step_path}/user_input", raw=b"{not json"), 400, "M_NOT_JSON"
        )
        assert_error(
            await api.call("POST", f"{step_path}/complete"),
            400,
            "FI.MAU.BRIDGE.LOGIN_ALREADY_FINISHED",
        )
        assert_error(await api.call("POST", f"{step_path}/qr_dance"), 404, "M_UNRECOGNIZED")
        # Another user cannot see or drive it.
        other = Api(reg.url, session, f"@someone_else:{reg.server_name}")
        assert_error(await other.call("POST", f"{step_path}/display_and_wait"), 404, "M_NOT_FOUND")

        # The wait step answers once the code is approved.
        waiting = asyncio.create_task(api.ok("POST", f"{step_path}/display_and_wait"))
        await control.approve_device_code(code, me["mri"])
        done = await asyncio.wait_for(waiting, 120)
        assert done["type"] == "complete"
        assert done["login_id"] == process
        assert done["complete"]["user_login_id"] == me["mri"]
        assert "Grace Hopper" in done["instructions"]
        # A finished process is gone.
        assert_error(await api.call("POST", f"{step_path}/display_and_wait"), 404, "M_NOT_FOUND")

        # The login is real: the user's chats become rooms, and whoami shows it connected.
        await matrix_user.wait_for_invite(lambda inv: inv.name == "Engines")

        async def connected():
            logins = (await api.whoami())["logins"]
            return logins if logins and logins[0]["state_event"] == "CONNECTED" else None

        logins = await wait_for(connected)
        assert logins[0]["id"] == me["mri"]
        assert logins[0]["name"] == "Grace Hopper"
        assert logins[0]["state"]["state_event"] == "CONNECTED"
        assert logins[0]["profile"]["name"] == "Grace Hopper"
        assert (await api.ok("GET", "/v3/logins")) == {"login_ids": [me["mri"]]}

        # Logging out: an unknown login id is 404; the right one removes the login.
        assert_error(await api.call("POST", "/v3/logout/8:orgid:nobody"), 404, "M_NOT_FOUND")
        assert (await api.ok("POST", f"/v3/logout/{quote(me['mri'])}")) == {}
        assert (await api.whoami())["logins"] == []
        assert (await api.ok("GET", "/v3/logins")) == {"login_ids": []}

        async def disconnected():
            state = (await control.connections()).get(me["mri"], {})
            return not state.get("connections")

        await wait_for(disconnected)
        # "all" with nothing left to log out is fine.
        assert (await api.ok("POST", "/v3/logout/all")) == {}


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_personal_refresh_token_and_cancelled_logins(
    backend, synapse, bridge_factory, control, matrix_client_factory, fake_teams
):
    reg = synapse.appservices[backend]
    pat = await control.create_user(display_name="Pat Personal", kind="personal")
    wendy = await control.create_user(display_name="Wendy Work", kind="work")
    bridge = bridge_factory(overrides=provisioning())
    await bridge.astart()
    first_user = await matrix_client_factory()
    second_user = await matrix_client_factory()

    async with aiohttp.ClientSession() as session:
        # A personal account through the device-code flow.
        api = Api(reg.url, session, first_user.user_id)
        done = await device_code_login(api, control, "personal", pat["mri"])
        assert done["complete"]["user_login_id"] == pat["mri"]
        assert [login["id"] for login in (await api.whoami())["logins"]] == [pat["mri"]]

        # The refresh-token fallback: one user_input step.
        api2 = Api(reg.url, session, second_user.user_id)
        first = await api2.ok("POST", "/v3/login/start/refresh-token")
        assert first["type"] == "user_input"
        fields = first["user_input"]["fields"]
        assert [(f["id"], f["type"]) for f in fields] == [("refresh_token", "token")]
        path = f"/v3/login/step/{first['login_id']}/{first['step_id']}/user_input"
        # A missing field is bad input; the step may be sent again.
        assert_error(await api2.call("POST", path, {}), 400, "M_BAD_JSON")
        assert_error(await api2.call("POST", path, {"refresh_token": 5}), 400, "M_BAD_JSON")
        assert_error(await api2.call("POST", path, ["refresh_token"]), 400, "M_BAD_JSON")
        # A token Microsoft refuses fails the login, which then ends.
        assert_error(
            await api2.call("POST", path, {"refresh_token": "not-a-real-token-123"}),
            403,
            "M_FORBIDDEN",
        )
        assert_error(await api2.call("POST", path, {"refresh_token": "x"}), 404, "M_NOT_FOUND")

        token = await refresh_token_for(fake_teams.url, control, wendy["mri"])
        first = await api2.ok("POST", "/v3/login/start/refresh-token")
        path = f"/v3/login/step/{first['login_id']}/{first['step_id']}/user_input"
        done = await api2.ok("POST", path, {"refresh_token": token})
        assert done["type"] == "complete"
        assert done["complete"]["user_login_id"] == wendy["mri"]
        assert "Wendy Work" in done["instructions"]
        await control.wait_for_registration(wendy["mri"], timeout=60)

        # A cancelled process is gone; its code no longer logs anyone in.
        first = await api2.ok("POST", "/v3/login/start/work")
        assert (await api2.ok("POST", f"/v3/login/cancel/{first['login_id']}")) == {}
        path = f"/v3/login/step/{first['login_id']}/{first['step_id']}/display_and_wait"
        assert_error(await api2.call("POST", path), 404, "M_NOT_FOUND")
        assert_error(await api2.call("POST", "/v3/login/cancel/nope"), 404, "M_NOT_FOUND")
        assert [login["id"] for login in (await api2.whoami())["logins"]] == [wendy["mri"]]

    # The pasted refresh token never reaches the logs.
    await bridge.astop()
    logs = bridge.log_text()
    assert "Started refresh-token login" in logs
    assert token not in logs


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_bad_secret_user_and_input_are_refused(
    backend, synapse, bridge_factory, bridge_database, control, matrix_client_factory
):
    reg = synapse.appservices[backend]
    allowed = await matrix_client_factory()
    stranger = await matrix_client_factory()
    bridge = bridge_factory(
        permissions={allowed.user_id: "user", stranger.user_id: "relay"}, overrides=provisioning()
    )
    await bridge.astart()
    async with aiohttp.ClientSession() as session:
        api = Api(reg.url, session, allowed.user_id)

        # The shared secret.
        assert_error(await api.call("GET", "/v3/whoami", token=None), 401, "M_MISSING_TOKEN")
        assert_error(await api.call("GET", "/v3/whoami", token="wrong"), 401, "M_UNKNOWN_TOKEN")
        assert_error(
            await api.call("GET", "/v3/whoami", token=reg.as_token), 401, "M_UNKNOWN_TOKEN"
        )
        assert_error(await api.call("GET", "/v3/nothing", token="wrong"), 401, "M_UNKNOWN_TOKEN")

        # The user: missing, malformed, without the `user` permission, or not a person.
        assert_error(await api.call("GET", "/v3/whoami", user_id=None), 400, "M_MISSING_PARAM")
        assert_error(await api.call("GET", "/v3/whoami", user_id="alice"), 400, "M_INVALID_PARAM")
        for refused in (
            stranger.user_id,
            f"@unknown_person:{reg.server_name}",
            reg.bot_mxid,
            puppet_mxid(reg, "8:orgid:00000000-0000-0000-0000-000000000001"),
        ):
            assert_error(await api.call("GET", "/v3/whoami", user_id=refused), 403, "M_FORBIDDEN")
            assert_error(
                await api.call("POST", "/v3/login/start/work", user_id=refused), 403, "M_FORBIDDEN"
            )

        # Bad input.
        assert_error(await api.call("POST", "/v3/login/start/qr"), 404, "M_NOT_FOUND")
        assert_error(await api.call("GET", "/v3/nothing"), 404, "M_UNRECOGNIZED")
        assert_error(await api.call("DELETE", "/v3/whoami"), 405, "M_UNRECOGNIZED")
        assert_error(await api.call("POST", "/v3/search_users", raw=b"[1,"), 400, "M_NOT_JSON")
        assert_error(await api.call("POST", "/v3/search_users", {"q": "x"}), 400, "M_BAD_JSON")
        assert_error(
            await api.call("POST", "/v3/search_users", raw=b"{" * 70000), 413, "M_TOO_LARGE"
        )
        assert_error(
            await api.call("POST", "/v3/create_group/group", raw=b"nope"), 400, "M_NOT_JSON"
        )
        # Chat routes need a login.
        assert_error(await api.call("GET", "/v3/contacts"), 400, "FI.MAU.NOT_LOGGED_IN")
        assert_error(
            await api.call("GET", "/v3/resolve_identifier/8:orgid:x"), 400, "FI.MAU.NOT_LOGGED_IN"
        )
        assert_error(await api.call("POST", "/v3/create_dm/8:orgid:x"), 400, "FI.MAU.NOT_LOGGED_IN")
        assert_error(
            await api.call("GET", "/v3/contacts", query={"login_id": "8:orgid:x"}),
            404,
            "M_NOT_FOUND",
        )

        # Browsers' preflight requests get CORS headers.
        async with session.options(api.base + "/v3/whoami") as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    await bridge.astop()
    assert "Provisioning request with an invalid token" in bridge.log_text()
    assert SECRET not in bridge.log_text()
    # Refused users were never stored as bridge users.
    with closing(sqlite3.connect(bridge_database.removeprefix("sqlite:"))) as db:
        stored = {row[0] for row in db.execute('SELECT mxid FROM "user"')}
    assert allowed.user_id in stored
    assert stranger.user_id not in stored
    assert f"@unknown_person:{reg.server_name}" not in stored


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_resolve_search_contacts_and_start_chats(
    backend, synapse, bridge_factory, control, matrix_user
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    carol = await control.create_user(display_name="Carol Shaw", kind="work")
    with_ada = await control.create_chat(kind="one_to_one", members=[me["mri"], ada["mri"]])
    await control.post_message(with_ada["id"], sender=ada["mri"], content="<p>hi</p>")
    bridge = bridge_factory(overrides=provisioning())
    await bridge.astart()

    async with aiohttp.ClientSession() as session:
        api = Api(reg.url, session, matrix_user.user_id)
        await device_code_login(api, control, "work", me["mri"])
        ada_room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")

        # Resolving by MRI, by the ghost's Matrix ID and by email address.
        ada_ghost = puppet_mxid(reg, ada["mri"])

        async def ada_resolved():
            found = await api.ok("GET", f"/v3/resolve_identifier/{quote(ada['mri'])}")
            return found if found.get("dm_room_mxid") else None

        found = await wait_for(ada_resolved)
        assert found["id"] == ada["mri"]
        assert found["name"] == "Ada Lovelace"
        assert found["mxid"] == ada_ghost
        assert found["dm_room_mxid"] == ada_room
        assert found["identifiers"] == [f"mailto:{ada['email']}"]
        by_ghost = await api.ok("GET", f"/v3/resolve_identifier/{quote(ada_ghost)}")
        assert by_ghost["id"] == ada["mri"]
        by_email = await api.ok("GET", f"/v3/resolve_identifier/{quote(bob['email'])}")
        assert by_email["id"] == bob["mri"] and "dm_room_mxid" not in by_email
        assert_error(
            await api.call(
                "GET", "/v3/resolve_identifier/8:orgid:0000aaaa-0000-0000-0000-00000000"
            ),
            404,
            "M_NOT_FOUND",
        )
        assert_error(
            await api.call("GET", "/v3/resolve_identifier/nobody-at-all"), 400, "M_INVALID_PARAM"
        )

        # Search and contacts.
        results = (await api.ok("POST", "/v3/search_users", {"query": "babbage"}))["results"]
        assert [(r["id"], r["name"], r["mxid"]) for r in results] == [
            (bob["mri"], "Bob Babbage", puppet_mxid(reg, bob["mri"]))
        ]
        assert (await api.ok("POST", "/v3/search_users", {"query": ""}))["results"] == []
        contacts = (await api.ok("GET", "/v3/contacts"))["contacts"]
        assert [(c["id"], c.get("dm_room_mxid")) for c in contacts] == [(ada["mri"], ada_room)]

        # A DM that exists is answered with its room (200); a new one is created (201).
        status, again = await api.call("POST", f"/v3/create_dm/{quote(ada['mri'])}")
        assert status == 200 and again["dm_room_mxid"] == ada_room
        status, created = await api.call("POST", f"/v3/create_dm/{quote(bob['mri'])}")
        assert status == 201, created
        bob_room = created["dm_room_mxid"]
        assert created["id"] == bob["mri"] and created["mxid"] == puppet_mxid(reg, bob["mri"])
        await matrix_user.wait_for_invite(lambda inv: inv.room_id == bob_room)
        assert matrix_user.invites[bob_room].is_direct
        assert_error(
            await api.call("POST", f"/v3/create_dm/{quote(me['mri'])}"), 400, "M_INVALID_PARAM"
        )
        chats = await control.list_chats()
        bob_chat = next(
            c
            for c in chats
            if c["kind"] == "one_to_one"
            and {m["mri"] for m in c["members"]} == {me["mri"], bob["mri"]}
        )
        # The room is wired to that chat.
        await matrix_user.join(bob_room)
        await matrix_user.send_text(bob_room, "hello Bob")

        async def delivered():
            messages = await control.list_messages(bob_chat["id"])
            return any("hello Bob" in m.get("content", "") for m in messages)

        await wait_for(delivered)

        # A group chat, participants by MRI and by ghost.
        group = await api.ok(
            "POST",
            "/v3/create_group/group",
            {
                "participants": [bob["mri"], puppet_mxid(reg, carol["mri"])],
                "name": {"name": "Project X"},
            },
        )
        group_room = await matrix_user.wait_for_invite(lambda inv: inv.name == "Project X")
        assert group["mxid"] == group_room
        made = await control.get_chat(group["id"])
        assert made["kind"] == "group"
        assert {m["mri"] for m in made["members"]} == {me["mri"], bob["mri"], carol["mri"]}
        assert_error(
            await api.call("POST", "/v3/create_group/channel", {"participants": [bob["mri"]]}),
            404,
            "M_UNRECOGNIZED",
        )
        assert_error(
            await api.call("POST", "/v3/create_group/group", {"participants": []}),
            400,
            "M_INVALID_PARAM",
        )
        assert_error(
            await api.call("POST", "/v3/create_group/group", {"participants": ["bob"]}),
            400,
            "M_INVALID_PARAM",
        )


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_bot_and_api_share_the_login_process(
    backend, synapse, bridge_factory, control, matrix_user
):
    """The bot's `login` runs on the same login process as the API: cancelling and declining
    read as before in the chat, and a code declined during an API login ends it."""
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    bridge = bridge_factory(overrides=provisioning())
    await bridge.astart()
    dm = await matrix_user.create_dm(reg.bot_mxid)
    await matrix_user.wait_for_notice(dm, contains="Teams bridge bot")

    async def bot_code(after: str) -> str:
        prompt = await matrix_user.wait_for_notice(dm, contains="enter the code", after=after)
        match = CODE_RE.search(prompt.content.body)
        assert match, prompt.content.body
        return match.group(1)

    # Cancelled: the code no longer logs anyone in.
    sent = await matrix_user.send_text(dm, "login")
    code = await bot_code(sent)
    sent = await matrix_user.send_text(dm, "cancel")
    await matrix_user.wait_for_notice(dm, contains="Login cancelled.", after=sent)
    await control.approve_device_code(code, me["mri"])
    sent = await matrix_user.send_text(dm, "ping")
    await matrix_user.wait_for_notice(dm, contains="You are not logged in", after=sent)

    # Declined.
    sent = await matrix_user.send_text(dm, "login")
    code = await bot_code(sent)
    await control.decline_device_code(code)
    await matrix_user.wait_for_notice(dm, contains="The login was declined.", after=sent)

    async with aiohttp.ClientSession() as session:
        api = Api(reg.url, session, matrix_user.user_id)
        first = await api.ok("POST", "/v3/login/start/work")
        waiting = asyncio.create_task(
            api.call(
                "POST", f"/v3/login/step/{first['login_id']}/{first['step_id']}/display_and_wait"
            )
        )
        await control.decline_device_code(first["display_and_wait"]["data"])
        assert_error(await asyncio.wait_for(waiting, 120), 403, "M_FORBIDDEN")
        assert (await api.whoami())["logins"] == []

        # And the bot still logs in (the management room is the DM).
        sent = await matrix_user.send_text(dm, "login")
        await control.approve_device_code(await bot_code(sent), me["mri"])
        await matrix_user.wait_for_notice(
            dm, contains="Successfully logged in as Grace Hopper.", after=sent
        )
        who = await api.whoami()
        assert [login["id"] for login in who["logins"]] == [me["mri"]]
        assert who["management_room"] == dm
