"""End-to-bridge encryption: with `bridge.encryption.allow` and `default`, portal rooms are
made encrypted; an E2EE-capable Matrix client (mautrix's client crypto over python-olm)
reads what comes from Teams and what it sends reaches Teams."""

from __future__ import annotations

import uuid
from typing import Any

from mautrix.types import EventType

from tests.e2e.helpers import login_through_bot, puppet_mxid, wait_for
from tests.harness.e2ee_client import E2EEClient

STOP_TIMEOUT = 5


def encryption_overrides(**extra: Any) -> dict[str, Any]:
    return {
        "bridge.encryption.allow": True,
        "bridge.encryption.default": True,
        # Appservice mode: to-device events, device lists and one-time key counts come in
        # the appservice transactions (MSC2409, MSC3202); the bot's device is made with
        # MSC4190. The test homeserver has all three.
        "bridge.encryption.appservice": True,
        "bridge.encryption.msc4190": True,
        # The test client's device is not cross-signed.
        "bridge.encryption.verification_levels.share": "unverified",
        "bridge.encryption.verification_levels.receive": "unverified",
        "bridge.encryption.verification_levels.send": "unverified",
        **extra,
    }


async def _e2ee_user(synapse) -> E2EEClient:
    client = await E2EEClient.create(synapse, f"e2ee_{uuid.uuid4().hex[:10]}")
    assert isinstance(client, E2EEClient)
    return client


def _raw_types(mx: E2EEClient, room: str) -> list[str]:
    return [str(e.type) for e in mx.timeline[room]]


async def test_encrypted_portal_text_both_ways(backend, synapse, bridge_factory, control):
    reg = synapse.appservices[backend]
    mx = await _e2ee_user(synapse)
    try:
        me = await control.create_user(display_name="Grace Hopper", kind="work")
        ada = await control.create_user(display_name="Ada Lovelace", kind="work")
        chat = (await control.create_chat("one_to_one", [me["mri"], ada["mri"]]))["id"]
        bridge = bridge_factory(overrides=encryption_overrides())
        await bridge.astart()
        await login_through_bot(mx, reg, control, me["mri"])
        room = await mx.wait_for_invite(lambda inv: inv.name == "Ada Lovelace")
        await mx.join(room)
        await control.wait_for_registration(me["mri"], timeout=60)
        ada_p = puppet_mxid(reg, ada["mri"])

        # Teams -> Matrix: sent encrypted, read in plaintext.
        await control.post_message(chat, sender=ada["mri"], content="<p>hello <b>there</b></p>")
        got = await mx.wait_for_message(room, sender=ada_p, body="hello there")
        assert got.content.formatted_body and "<strong>there</strong>" in got.content.formatted_body
        raw = await mx.client.api.request(
            "GET", f"/_matrix/client/v3/rooms/{room}/event/{got.event_id}"
        )
        assert raw["type"] == "m.room.encrypted"

        # Matrix -> Teams: the client encrypts, the bridge decrypts.
        sent = await mx.send_text(room, "secret plans")
        raw = await mx.client.api.request("GET", f"/_matrix/client/v3/rooms/{room}/event/{sent}")
        assert raw["type"] == "m.room.encrypted"

        async def in_teams() -> bool:
            return any(
                "secret plans" in (m.get("content") or "")
                for m in await control.list_messages(chat)
            )

        await wait_for(in_teams)
        await bridge.astop(timeout=STOP_TIMEOUT)
    finally:
        await mx.close()
