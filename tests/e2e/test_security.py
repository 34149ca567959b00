"""Secrets stay secret; only the homeserver may talk to the appservice endpoint."""

from __future__ import annotations

import aiohttp
import pytest
from mautrix.types import EventType, RoomCreatePreset

from tests.e2e.helpers import login_through_bot, puppet_mxid, refresh_token_for, wait_for


@pytest.mark.parametrize("backend", ["lite"], indirect=True)
async def test_secret_login_is_redacted_and_no_token_reaches_the_logs(
    backend, synapse, bridge_factory, control, matrix_client_factory, fake_teams
):
    reg = synapse.appservices[backend]
    me = await control.create_user(display_name="Grace Hopper", kind="work")
    ada = await control.create_user(display_name="Ada Lovelace", kind="work")
    chat = await control.create_chat(kind="group", members=[me["mri"], ada["mri"]], topic="Sec")
    bridge = bridge_factory()
    await bridge.astart()

    # A user logs in with a pasted refresh token, in a DM where the bot may redact (the
    # trusted_private_chat preset most clients use for DMs).
    user = await matrix_client_factory()
    dm = await user.client.create_room(
        preset=RoomCreatePreset.TRUSTED_PRIVATE, is_direct=True, invitees=[reg.bot_mxid]
    )
    await user.wait_for_notice(dm, contains="Teams bridge bot")
    refresh_token = await refresh_token_for(fake_teams.url, control, me["mri"])
    secret_id = await user.send_text(dm, f"login-refresh {refresh_token}")
    await user.wait_for_event(
        dm, lambda e: e.type == EventType.ROOM_REDACTION and e.redacts == secret_id
    )
    await user.wait_for_notice(dm, contains="Successfully logged in as Grace Hopper")
    # The homeserver no longer serves the secret.
    event = await user.client.get_event(dm, secret_id)
    assert "body" not in event.content.serialize()

    # A message exchange both ways, and a device-code login by a second user.
    room = await user.wait_for_invite(lambda inv: inv.name == "Sec")
    await user.join(room)
    await control.wait_for_registration(me["mri"], timeout=60)
    await control.post_message(chat["id"], sender=ada["mri"], content="<p>psst</p>")
    await user.wait_for_message(room, sender=puppet_mxid(reg, ada["mri"]), body="psst")
    await user.send_text(room, "hello")

    async def delivered():
        return any("hello" in m.get("content", "") for m in await control.list_messages(chat["id"]))

    await wait_for(delivered)
    second = await matrix_client_factory()
    bob = await control.create_user(display_name="Bob Babbage", kind="work")
    await login_through_bot(second, reg, control, bob["mri"])
    await control.wait_for_registration(bob["mri"], timeout=60)

    # Every token the simulator ever issued is absent from the bridge's logs and output.
    await bridge.astop()
    logs = bridge.log_text()
    assert len(logs) > 1000
    issued = await control.tokens()
    values = [v for group in issued.values() for v in group if len(v) >= 8]
    assert values
    leaked = [v[:12] + "…" for v in values if v in logs]
    assert leaked == []
    assert refresh_token not in logs


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
async def test_appservice_endpoint_requires_the_hs_token(backend, synapse, bridge_factory):
    reg = synapse.appservices[backend]
    bridge = bridge_factory()
    await bridge.astart()
    txn = {
        "events": [
            {
                "type": "m.room.message",
                "room_id": "!nowhere:localhost",
                "sender": "@mallory:localhost",
                "event_id": "$forged",
                "content": {"msgtype": "m.text", "body": "forged"},
            }
        ]
    }
    url = f"{reg.url}/_matrix/app/v1/transactions/forged-1"
    async with aiohttp.ClientSession() as session:
        async with session.put(url, json=txn) as resp:
            assert resp.status in (401, 403)
        headers = {"Authorization": "Bearer not-the-token"}
        async with session.put(url, json=txn, headers=headers) as resp:
            assert resp.status in (401, 403)
        async with session.put(url, json=txn, params={"access_token": "wrong"}) as resp:
            assert resp.status in (401, 403)
        headers = {"Authorization": f"Bearer {reg.hs_token}"}
        async with session.put(url, json=txn, headers=headers) as resp:
            assert resp.status == 200
